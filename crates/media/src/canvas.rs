//! Letterboxing a decoded frame into a model-sized canvas.
//!
//! A key design decision here is that swscale writes the resized image
//! straight into the content region of the canvas (destination pointer
//! offset, destination stride = canvas stride), so there is no intermediate
//! resized frame and no extra copy. The padding is painted once per canvas
//! and geometry, not per frame.

use std::ptr;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use peregrine_core::{CanvasLayout, ChannelOrder, Letterbox, ResizeMode};

use crate::MediaError;

/// A packed 8-bit, 3-channel image of a model's input size.
#[derive(Clone, Debug)]
pub struct Canvas {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    painted: Option<(u32, u32, u32, u32)>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            data: vec![0; width as usize * height as usize * 3],
            width,
            height,
            painted: None,
        }
    }

    /// Wraps existing pixels (tests, image files decoded elsewhere).
    pub fn from_packed(data: Vec<u8>, width: u32, height: u32) -> Self {
        assert_eq!(data.len(), width as usize * height as usize * 3);
        Self {
            data,
            width,
            height,
            painted: None,
        }
    }

    fn paint_padding(&mut self, lb: &Letterbox, pad: u8) {
        let key = (
            lb.offset_x,
            lb.offset_y,
            lb.content_width,
            lb.content_height,
        );
        if self.painted != Some(key) {
            self.data.fill(pad);
            self.painted = Some(key);
        }
    }
}

/// Scales decoded frames into canvases. One per thread; keeps its swscale
/// context while the source format and size stay the same.
pub struct LetterboxScaler {
    layout: CanvasLayout,
    ctx: *mut ffi::SwsContext,
}

// SAFETY: the SwsContext is owned by this value and only used through
// `&mut self`, so it is never touched by two threads at once.
unsafe impl Send for LetterboxScaler {}

impl LetterboxScaler {
    pub fn new(layout: CanvasLayout) -> Self {
        Self {
            layout,
            ctx: ptr::null_mut(),
        }
    }

    pub fn layout(&self) -> &CanvasLayout {
        &self.layout
    }

    /// Resizes and converts `frame` into `canvas` and returns the geometry
    /// needed to map detections back.
    pub fn run(
        &mut self,
        frame: &ffmpeg::frame::Video,
        canvas: &mut Canvas,
    ) -> Result<Letterbox, MediaError> {
        let (w, h) = (frame.width(), frame.height());
        let lb = Letterbox::compute(w, h, &self.layout);
        assert_eq!(
            (canvas.width, canvas.height),
            (self.layout.width, self.layout.height)
        );
        match self.layout.resize {
            ResizeMode::LetterboxTopLeft { pad } | ResizeMode::LetterboxCenter { pad } => {
                canvas.paint_padding(&lb, pad)
            }
            ResizeMode::Stretch => {}
        }
        let dst_fmt = match self.layout.order {
            ChannelOrder::Rgb => ffi::AVPixelFormat::AV_PIX_FMT_RGB24,
            ChannelOrder::Bgr => ffi::AVPixelFormat::AV_PIX_FMT_BGR24,
        };
        let stride = canvas.width as usize * 3;
        let offset = lb.offset_y as usize * stride + lb.offset_x as usize * 3;
        // SAFETY: `frame` is a decoded AVFrame with valid planes for its
        // format and size. The destination pointer addresses the content
        // region of `canvas.data`: it starts at `offset` and, with stride
        // `stride`, spans `content_height` rows of `content_width * 3` bytes,
        // all inside the buffer because the content fits the canvas
        // (Letterbox::compute clamps it).
        unsafe {
            let src = frame.as_ptr();
            let src_fmt: ffi::AVPixelFormat = std::mem::transmute((*src).format);
            self.ctx = ffi::sws_getCachedContext(
                self.ctx,
                w as i32,
                h as i32,
                src_fmt,
                lb.content_width as i32,
                lb.content_height as i32,
                dst_fmt,
                ffi::SWS_BILINEAR,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
            if self.ctx.is_null() {
                return Err(MediaError::Scaler {
                    path: Default::default(),
                    reason: format!("cannot convert {src_fmt:?} {w}x{h}"),
                });
            }
            let dst_planes: [*mut u8; 4] = [
                canvas.data.as_mut_ptr().add(offset),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            ];
            let dst_strides: [i32; 4] = [stride as i32, 0, 0, 0];
            ffi::sws_scale(
                self.ctx,
                (*src).data.as_ptr() as *const *const u8,
                (*src).linesize.as_ptr(),
                0,
                h as i32,
                dst_planes.as_ptr(),
                dst_strides.as_ptr(),
            );
        }
        Ok(lb)
    }
}

impl Drop for LetterboxScaler {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            // SAFETY: the context was created by sws_getCachedContext and is
            // freed exactly once.
            unsafe { ffi::sws_freeContext(self.ctx) };
        }
    }
}
