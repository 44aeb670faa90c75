//! Drawing detections onto RGB frames: boxes, labels, track trails.
//!
//! A key design decision: text uses the public-domain 8x8 bitmap font from
//! the `font8x8` crate, scaled by whole pixels, so annotation needs no font
//! files or system libraries and looks the same everywhere.

use font8x8::UnicodeFonts;
use peregrine_core::{BBox, COCO_SKELETON};

/// One thing to draw on a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    pub bbox: BBox,
    pub label: String,
    pub color: [u8; 3],
    /// Recent centre positions of the track, oldest first.
    pub trail: Vec<(f32, f32)>,
    /// Secondary boxes (not tracked) are drawn thin, without a tag.
    pub secondary: bool,
    /// Pose keypoints (x, y, confidence): with 17 (COCO) the skeleton is
    /// drawn, left limbs blue, right limbs orange.
    pub keypoints: Vec<[f32; 3]>,
}

/// Keypoints under this confidence are not drawn.
const KEYPOINT_MIN_CONF: f32 = 0.3;

/// Draws a COCO-17 skeleton: limbs whose two ends are confident enough,
/// then the joints.
fn skeleton(img: &mut RgbImage, k: &[[f32; 3]], s: i64) {
    if k.len() != 17 {
        return;
    }
    const LEFT: [u8; 3] = [40, 120, 255];
    const RIGHT: [u8; 3] = [255, 130, 20];
    const MID: [u8; 3] = [250, 250, 250];
    let side = |i: usize| match i {
        0 => 0,
        i if i % 2 == 1 => 1,
        _ => 2,
    };
    for &(a, b) in &COCO_SKELETON {
        let (p, q) = (k[a], k[b]);
        if p[2] < KEYPOINT_MIN_CONF || q[2] < KEYPOINT_MIN_CONF {
            continue;
        }
        let c = match (side(a), side(b)) {
            (1, 1) => LEFT,
            (2, 2) => RIGHT,
            _ => MID,
        };
        img.line((p[0], p[1]), (q[0], q[1]), c, s + 1);
    }
    for (i, p) in k.iter().enumerate() {
        if p[2] < KEYPOINT_MIN_CONF {
            continue;
        }
        let c = match side(i) {
            1 => LEFT,
            2 => RIGHT,
            _ => MID,
        };
        let r = s + 2;
        let (x, y) = (p[0].round() as i64, p[1].round() as i64);
        img.fill_rect(x - r, y - r, x + r + 1, y + r + 1, [0, 0, 0]);
        img.fill_rect(x - r + 1, y - r + 1, x + r, y + r, c);
    }
}

/// A detection drawn the same way wherever it is drawn (stored runs, live
/// stills): tracked boxes in their track's colour tagged "class id";
/// untracked ones of a tracked run (not yet confirmed) thin and untagged;
/// with tracking off, tagged "class score". `class` is the class's name.
pub fn detection_annotation(
    bbox: BBox,
    class: &str,
    class_id: u32,
    track_id: Option<u32>,
    score: f32,
    tracked_run: bool,
) -> Annotation {
    let class_color = palette_color(1000 + class_id);
    let (label, color, secondary) = match track_id {
        Some(id) => (format!("{class} {id}"), palette_color(id), false),
        None if tracked_run => (String::new(), class_color, true),
        None => (format!("{class} {score:.2}"), class_color, false),
    };
    Annotation {
        bbox,
        label,
        color,
        trail: Vec::new(),
        secondary,
        keypoints: Vec::new(),
    }
}

/// A stable, well-separated colour for an id (track or class): hues walk the
/// golden angle so neighbouring ids differ strongly.
pub fn palette_color(id: u32) -> [u8; 3] {
    let h = (id as f64 * 0.618_033_988_749_895).fract() * 6.0;
    let (s, v) = (0.85, 0.95);
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [
        ((r + m) * 255.0).round() as u8,
        ((g + m) * 255.0).round() as u8,
        ((b + m) * 255.0).round() as u8,
    ]
}

/// A packed RGB24 image borrowed for drawing.
pub struct RgbImage<'a> {
    pub data: &'a mut [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

impl RgbImage<'_> {
    #[inline]
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let o = y as usize * self.stride + x as usize * 3;
        self.data[o..o + 3].copy_from_slice(&c);
    }

    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (x0, x1) = (x0.max(0), x1.min(self.width as i64));
        let (y0, y1) = (y0.max(0), y1.min(self.height as i64));
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }

    /// Rectangle outline of `t` pixels drawn inside the box edges.
    pub fn rect(&mut self, b: &BBox, c: [u8; 3], t: i64) {
        let (x0, y0) = (b.x1.round() as i64, b.y1.round() as i64);
        let (x1, y1) = (b.x2.round() as i64, b.y2.round() as i64);
        self.fill_rect(x0, y0, x1, y0 + t, c);
        self.fill_rect(x0, y1 - t, x1, y1, c);
        self.fill_rect(x0, y0, x0 + t, y1, c);
        self.fill_rect(x1 - t, y0, x1, y1, c);
    }

    /// A line `t` pixels thick (square brush).
    pub fn line(&mut self, (ax, ay): (f32, f32), (bx, by): (f32, f32), c: [u8; 3], t: i64) {
        let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as i64;
        for i in 0..=steps {
            let f = i as f32 / steps as f32;
            let (x, y) = ((ax + (bx - ax) * f) as i64, (ay + (by - ay) * f) as i64);
            self.fill_rect(x - t / 2, y - t / 2, x - t / 2 + t, y - t / 2 + t, c);
        }
    }

    /// Text with its top-left corner at (x, y), each font pixel `scale` wide.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            let gx = x + i as i64 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let px = gx + col * scale;
                        let py = y + row as i64 * scale;
                        self.fill_rect(px, py, px + scale, py + scale, c);
                    }
                }
            }
        }
    }
}

/// Pixel scale for text and lines: 1 up to 480 lines, 2 at 720p, 3 at 1080p.
pub fn annotation_scale(height: u32) -> i64 {
    (height as i64 / 360).clamp(1, 4)
}

/// Draws boxes, label tags and trails.
pub fn draw(img: &mut RgbImage, annotations: &[Annotation]) {
    let s = annotation_scale(img.height);
    for a in annotations {
        for w in a.trail.windows(2) {
            img.line(w[0], w[1], a.color, s);
        }
    }
    for a in annotations {
        skeleton(img, &a.keypoints, s);
    }
    for a in annotations {
        if a.secondary {
            img.rect(&a.bbox, a.color, 1);
            continue;
        }
        img.rect(&a.bbox, a.color, s + 1);
        if a.label.is_empty() {
            continue;
        }
        let tw = a.label.chars().count() as i64 * 8 * s + 2 * s;
        let th = 8 * s + 2 * s;
        let x = (a.bbox.x1.round() as i64).min(img.width as i64 - tw).max(0);
        // Tag above the box, or inside it at the top when there is no room.
        let y = if a.bbox.y1 as i64 >= th {
            a.bbox.y1.round() as i64 - th
        } else {
            a.bbox.y1.round() as i64
        };
        img.fill_rect(x, y, x + tw, y + th, a.color);
        let luma =
            0.299 * a.color[0] as f32 + 0.587 * a.color[1] as f32 + 0.114 * a.color[2] as f32;
        let fg = if luma > 140.0 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        img.text(x + s, y + s, &a.label, s, fg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_distinct() {
        assert_eq!(palette_color(7), palette_color(7));
        let cs: Vec<[u8; 3]> = (1..=20).map(palette_color).collect();
        for i in 0..cs.len() {
            for j in i + 1..cs.len() {
                let d: i32 = (0..3)
                    .map(|k| (cs[i][k] as i32 - cs[j][k] as i32).abs())
                    .sum();
                assert!(d > 20, "ids {} and {} look alike", i + 1, j + 1);
            }
        }
    }

    #[test]
    fn draws_inside_the_frame_only_where_asked() {
        let (w, h) = (64u32, 48u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        let mut img = RgbImage {
            data: &mut buf,
            width: w,
            height: h,
            stride: w as usize * 3,
        };
        let ann = Annotation {
            bbox: BBox::new(10.0, 20.0, 30.0, 40.0),
            label: "A".into(),
            color: [255, 0, 0],
            trail: vec![],
            secondary: false,
            keypoints: vec![],
        };
        draw(
            &mut img,
            &[
                ann.clone(),
                Annotation {
                    bbox: BBox::new(-10.0, -10.0, 100.0, 100.0),
                    ..ann
                },
            ],
        );
        let px = |x: usize, y: usize| &buf[(y * w as usize + x) * 3..(y * w as usize + x) * 3 + 3];
        assert_eq!(px(10, 30), &[255, 0, 0], "left edge");
        assert_eq!(px(20, 30), &[0, 0, 0], "box interior untouched");
        assert_eq!(px(50, 5), &[0, 0, 0], "far from any box untouched");
    }

    #[test]
    fn text_renders_glyph_pixels() {
        let mut buf = vec![0u8; 16 * 8 * 3];
        let mut img = RgbImage {
            data: &mut buf,
            width: 16,
            height: 8,
            stride: 48,
        };
        img.text(0, 0, "I", 1, [255, 255, 255]);
        let lit = buf.chunks(3).filter(|p| p[0] == 255).count();
        assert!(lit > 5 && lit < 64, "{lit}");
    }

    #[test]
    fn skeleton_limbs_between_confident_keypoints_only() {
        let (w, h) = (100u32, 100u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        let mut img = RgbImage {
            data: &mut buf,
            width: w,
            height: h,
            stride: w as usize * 3,
        };
        let mut k = vec![[0.0f32, 0.0, 0.0]; 17];
        // Left knee (13) to left ankle (15): confident, a vertical limb.
        k[13] = [20.0, 20.0, 0.9];
        k[15] = [20.0, 80.0, 0.9];
        // Right knee (14) to right ankle (16): the ankle is unsure.
        k[14] = [70.0, 20.0, 0.9];
        k[16] = [70.0, 80.0, 0.1];
        let ann = Annotation {
            bbox: BBox::new(5.0, 5.0, 95.0, 95.0),
            label: String::new(),
            color: [255, 0, 0],
            trail: vec![],
            secondary: true,
            keypoints: k,
        };
        draw(&mut img, &[ann]);
        let px = |x: usize, y: usize| {
            let o = y * w as usize * 3 + x * 3;
            [buf[o], buf[o + 1], buf[o + 2]]
        };
        assert_eq!(px(20, 50), [40, 120, 255]);
        assert_eq!(px(70, 50), [0, 0, 0]);
    }
}
