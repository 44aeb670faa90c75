//! How a frame is fitted into a model's input: pure geometry shared by the
//! media crate (which scales pixels) and the inference crate (which maps
//! boxes back).

use crate::BBox;

/// Channel order of the packed canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How a frame is fitted into the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Keep aspect ratio; image at the top-left corner (YOLOX).
    LetterboxTopLeft { pad: u8 },
    /// Keep aspect ratio; image centred (Ultralytics).
    LetterboxCenter { pad: u8 },
    /// Resize to the full canvas, ignoring aspect ratio (NanoDet).
    Stretch,
}

/// The canvas a model wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanvasLayout {
    pub width: u32,
    pub height: u32,
    pub order: ChannelOrder,
    pub resize: ResizeMode,
}

/// Where the frame landed in the canvas: `canvas = source * scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub scale_x: f32,
    pub scale_y: f32,
    pub offset_x: u32,
    pub offset_y: u32,
    pub content_width: u32,
    pub content_height: u32,
    pub source_width: u32,
    pub source_height: u32,
}

impl Letterbox {
    /// Geometry for a `src_w x src_h` frame in `layout`, using the same
    /// rounding as the model families' reference implementations.
    pub fn compute(src_w: u32, src_h: u32, layout: &CanvasLayout) -> Letterbox {
        let (cw, ch) = (layout.width as f64, layout.height as f64);
        let (w, h) = (src_w.max(1) as f64, src_h.max(1) as f64);
        match layout.resize {
            ResizeMode::Stretch => Letterbox {
                scale_x: (cw / w) as f32,
                scale_y: (ch / h) as f32,
                offset_x: 0,
                offset_y: 0,
                content_width: layout.width,
                content_height: layout.height,
                source_width: src_w,
                source_height: src_h,
            },
            ResizeMode::LetterboxTopLeft { .. } => {
                // YOLOX: r = min(H/h, W/w); size = int(w*r), int(h*r).
                let r = (ch / h).min(cw / w);
                Letterbox {
                    scale_x: r as f32,
                    scale_y: r as f32,
                    offset_x: 0,
                    offset_y: 0,
                    content_width: ((w * r) as u32).clamp(1, layout.width),
                    content_height: ((h * r) as u32).clamp(1, layout.height),
                    source_width: src_w,
                    source_height: src_h,
                }
            }
            ResizeMode::LetterboxCenter { .. } => {
                // Ultralytics LetterBox: round the new size, split the padding,
                // top/left = round(d - 0.1).
                let r = (ch / h).min(cw / w);
                let nw = ((w * r).round() as u32).clamp(1, layout.width);
                let nh = ((h * r).round() as u32).clamp(1, layout.height);
                let dw = (cw - nw as f64) / 2.0;
                let dh = (ch - nh as f64) / 2.0;
                Letterbox {
                    scale_x: r as f32,
                    scale_y: r as f32,
                    offset_x: (dw - 0.1).round().max(0.0) as u32,
                    offset_y: (dh - 0.1).round().max(0.0) as u32,
                    content_width: nw,
                    content_height: nh,
                    source_width: src_w,
                    source_height: src_h,
                }
            }
        }
    }

    /// Maps a box from canvas pixels back to source-frame pixels, clamped to
    /// the frame.
    pub fn to_source(&self, b: BBox) -> BBox {
        let (ox, oy) = (self.offset_x as f32, self.offset_y as f32);
        BBox::new(
            (b.x1 - ox) / self.scale_x,
            (b.y1 - oy) / self.scale_y,
            (b.x2 - ox) / self.scale_x,
            (b.y2 - oy) / self.scale_y,
        )
        .clamp(self.source_width as f32, self.source_height as f32)
    }

    /// Maps a point from canvas pixels back to source-frame pixels.
    pub fn point_to_source(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.offset_x as f32) / self.scale_x,
            (y - self.offset_y as f32) / self.scale_y,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(resize: ResizeMode) -> CanvasLayout {
        CanvasLayout {
            width: 416,
            height: 416,
            order: ChannelOrder::Bgr,
            resize,
        }
    }

    #[test]
    fn yolox_letterbox_is_top_left_with_floor() {
        let lb = Letterbox::compute(640, 480, &layout(ResizeMode::LetterboxTopLeft { pad: 114 }));
        assert_eq!((lb.content_width, lb.content_height), (416, 312));
        assert_eq!((lb.offset_x, lb.offset_y), (0, 0));
        assert!((lb.scale_x - 0.65).abs() < 1e-6);
        let b = lb.to_source(BBox::new(65.0, 13.0, 130.0, 26.0));
        assert!((b.x1 - 100.0).abs() < 1e-3 && (b.y2 - 40.0).abs() < 1e-3);
    }

    #[test]
    fn ultralytics_letterbox_centres_and_rounds() {
        let l = CanvasLayout {
            width: 640,
            height: 640,
            order: ChannelOrder::Rgb,
            resize: ResizeMode::LetterboxCenter { pad: 114 },
        };
        // 1280x720 -> 640x360, dh = 140 -> top = round(139.9) = 140.
        let lb = Letterbox::compute(1280, 720, &l);
        assert_eq!((lb.content_width, lb.content_height), (640, 360));
        assert_eq!((lb.offset_x, lb.offset_y), (0, 140));
        // 480x360 -> 640x480, dh = 80.
        let lb = Letterbox::compute(480, 360, &l);
        assert_eq!((lb.content_height, lb.offset_y), (480, 80));
        let (x, y) = lb.point_to_source(320.0, 320.0);
        assert!((x - 240.0).abs() < 1e-3 && (y - 180.0).abs() < 1e-3);
    }

    #[test]
    fn stretch_scales_axes_independently() {
        let lb = Letterbox::compute(1280, 720, &layout(ResizeMode::Stretch));
        assert!((lb.scale_x - 0.325).abs() < 1e-6);
        assert!((lb.scale_y - 416.0 / 720.0).abs() < 1e-6);
        let b = lb.to_source(BBox::new(0.0, 0.0, 416.0, 416.0));
        assert!(
            (b.x2 - 1280.0).abs() < 1e-3 && (b.y2 - 720.0).abs() < 1e-3,
            "{b:?}"
        );
    }
}
