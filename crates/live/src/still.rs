//! The latest analysed picture of a stream with its detections, for a
//! service's live view. At most one picture is taken per
//! [`STILL_INTERVAL`] (a copy as packed RGB24 of a frame sent to the
//! engine); it becomes the stream's still when that frame's detections
//! come back. A stream holds at most two pictures (the one waiting for
//! its detections, and the still), whatever it runs for.

use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{Detection, Labels};
use peregrine_media::ffmpeg::format::Pixel;
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::ffmpeg::software::scaling;
use peregrine_media::{detection_annotation, draw, encode_jpeg, Annotation, RgbImage};

/// Time between two pictures taken for the still.
pub const STILL_INTERVAL: Duration = Duration::from_secs(1);

/// A picture waiting for its frame's detections.
pub(crate) struct Pending {
    pub index: u64,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// The latest analysed frame of a stream and what was detected on it.
#[derive(Clone, Debug)]
pub struct Still {
    /// The frame's position on the stream's clock.
    pub index: u64,
    pub width: u32,
    pub height: u32,
    /// Packed RGB24, `width * 3` bytes a row.
    pub rgb: Vec<u8>,
    pub annotations: Vec<Annotation>,
}

impl Still {
    /// Boxes drawn as `render` draws a stored run: tracked ones in their
    /// track's colour tagged "class id", untracked ones of a tracked stream
    /// (below the birth threshold, not yet confirmed) thin and untagged,
    /// and with tracking off "class score".
    pub(crate) fn new(
        p: Pending,
        detections: &[Detection],
        labels: &Labels,
        tracked: bool,
    ) -> Arc<Still> {
        let annotations = detections
            .iter()
            .map(|d| {
                detection_annotation(
                    d.bbox,
                    &labels.name(d.class_id),
                    u32::from(d.class_id),
                    d.track_id,
                    d.score,
                    tracked,
                )
            })
            .collect();
        Arc::new(Still {
            index: p.index,
            width: p.width,
            height: p.height,
            rgb: p.rgb,
            annotations,
        })
    }

    /// The picture with its boxes and labels drawn, as a JPEG.
    pub fn jpeg(&self) -> Result<Vec<u8>, String> {
        let mut f = Video::new(Pixel::RGB24, self.width, self.height);
        let stride = f.stride(0);
        let row = self.width as usize * 3;
        {
            let data = f.data_mut(0);
            for (y, src) in self.rgb.chunks_exact(row).enumerate() {
                data[y * stride..y * stride + row].copy_from_slice(src);
            }
            draw(
                &mut RgbImage {
                    data,
                    width: self.width,
                    height: self.height,
                    stride,
                },
                &self.annotations,
            );
        }
        encode_jpeg(&f, 4).map_err(|e| format!("JPEG encoder: {e}"))
    }
}

/// Copies decoded frames as packed RGB24.
#[derive(Default)]
pub(crate) struct Grabber {
    sws: Option<(scaling::Context, Pixel, u32, u32)>,
    rgb: Option<Video>,
}

impl Grabber {
    pub fn grab(&mut self, frame: &Video, index: u64) -> Option<Pending> {
        let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 {
            return None;
        }
        let fresh = !matches!(&self.sws, Some((_, f, sw, sh)) if *f == fmt && *sw == w && *sh == h);
        if fresh {
            let ctx =
                scaling::Context::get(fmt, w, h, Pixel::RGB24, w, h, scaling::Flags::BILINEAR)
                    .ok()?;
            self.sws = Some((ctx, fmt, w, h));
            self.rgb = Some(Video::new(Pixel::RGB24, w, h));
        }
        let (sws, ..) = self.sws.as_mut()?;
        let rgb = self.rgb.as_mut()?;
        sws.run(frame, rgb).ok()?;
        let stride = rgb.stride(0);
        let row = w as usize * 3;
        let data = rgb.data(0);
        let mut out = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            out.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Some(Pending {
            index,
            width: w,
            height: h,
            rgb: out,
        })
    }
}
