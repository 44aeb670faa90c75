//! Fitting decoded pictures of any size and format into one YUV 4:2:0
//! frame of a fixed size, for encoding: the display aspect ratio is kept
//! (pixel aspect ratios given by the caller, square by default) and the
//! picture is centred on black.
//!
//! Unlike [`LetterboxScaler`](crate::LetterboxScaler), which fills a packed
//! RGB model canvas, this fills the planar frame an encoder takes, and keeps
//! every plane offset even so chroma stays aligned.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{format, frame, software::scaling};

/// `v` rounded down to an even number, at least 2: 4:2:0 needs even sizes.
pub fn even_size(v: u32) -> u32 {
    (v.max(2)) & !1
}

type FitKey = (format::Pixel, u32, u32, u32, u32);

/// Scales pictures into a fixed-size YUV 4:2:0 frame, letterboxed. Keeps
/// its swscale context while the source format and size stay the same.
pub struct FrameFitter {
    /// The scaler and the (format, width, height, scaled width, scaled
    /// height) it was made for.
    sws: Option<(scaling::Context, FitKey)>,
    /// The scaled picture when it does not fill the frame.
    scaled: Option<frame::Video>,
    out: frame::Video,
}

impl FrameFitter {
    /// A black frame of `width` x `height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let mut out = frame::Video::new(format::Pixel::YUV420P, width, height);
        fill_black(&mut out);
        Self {
            sws: None,
            scaled: None,
            out,
        }
    }

    /// The frame holding the last fitted picture.
    pub fn frame(&self) -> &frame::Video {
        &self.out
    }

    /// [`frame`](Self::frame), to set its timestamp.
    pub fn frame_mut(&mut self) -> &mut frame::Video {
        &mut self.out
    }

    /// Scales `src` into the frame (square pixels in both).
    pub fn fit(&mut self, src: &frame::Video) -> Result<(), ffmpeg::Error> {
        self.fit_aspect(src, 1.0)
    }

    /// Scales `src` into the frame, keeping its display aspect ratio when a
    /// pixel of `src` is `pixel_ratio` times as wide as a pixel of the frame
    /// (source SAR / frame SAR).
    pub fn fit_aspect(
        &mut self,
        src: &frame::Video,
        pixel_ratio: f64,
    ) -> Result<(), ffmpeg::Error> {
        let (tw, th) = (self.out.width(), self.out.height());
        let (w, h, f) = (src.width(), src.height(), src.format());
        let shown_w = w as f64 * pixel_ratio;
        let s = (tw as f64 / shown_w).min(th as f64 / h as f64);
        let (fw, fh) = (
            even_size((shown_w * s).round() as u32).min(tw),
            even_size((h as f64 * s).round() as u32).min(th),
        );
        let key = (f, w, h, fw, fh);
        if self.sws.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = scaling::Context::get(
                f,
                w,
                h,
                format::Pixel::YUV420P,
                fw,
                fh,
                scaling::Flags::BICUBIC,
            )?;
            self.sws = Some((ctx, key));
            fill_black(&mut self.out);
            self.scaled =
                ((fw, fh) != (tw, th)).then(|| frame::Video::new(format::Pixel::YUV420P, fw, fh));
        }
        let sws = &mut self.sws.as_mut().expect("set").0;
        match &mut self.scaled {
            None => sws.run(src, &mut self.out)?,
            Some(scaled) => {
                sws.run(src, scaled)?;
                paste_centred(scaled, &mut self.out);
            }
        }
        Ok(())
    }
}

/// Copies `small` into the middle of `out`, at even offsets.
fn paste_centred(small: &frame::Video, out: &mut frame::Video) {
    let (tw, th, fw, fh) = (out.width(), out.height(), small.width(), small.height());
    let (x, y) = (((tw - fw) / 2) & !1, ((th - fh) / 2) & !1);
    for p in 0..3 {
        let (px, py, pw, ph) = if p == 0 {
            (x, y, fw, fh)
        } else {
            (x / 2, y / 2, fw / 2, fh / 2)
        };
        let (ss, ds) = (small.stride(p), out.stride(p));
        let sdata = small.data(p);
        let ddata = out.data_mut(p);
        for row in 0..ph as usize {
            let so = row * ss;
            let d0 = (py as usize + row) * ds + px as usize;
            ddata[d0..d0 + pw as usize].copy_from_slice(&sdata[so..so + pw as usize]);
        }
    }
}

fn fill_black(f: &mut frame::Video) {
    for (p, v) in [(0, 16u8), (1, 128), (2, 128)] {
        f.data_mut(p).fill(v);
    }
}
