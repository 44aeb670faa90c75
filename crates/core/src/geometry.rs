use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixel coordinates, corners `(x1, y1)` top-left and
/// `(x2, y2)` bottom-right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// From top-left corner, width and height (MOTChallenge convention).
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    /// From centre, width and height (detector output convention).
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5)
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }

    /// Intersection over union; 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Clamps the box into `[0, width] x [0, height]`.
    pub fn clamp(&self, width: f32, height: f32) -> BBox {
        BBox::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }

    /// True when every coordinate is finite and the box has positive area.
    pub fn is_valid(&self) -> bool {
        [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| v.is_finite())
            && self.x2 > self.x1
            && self.y2 > self.y1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        // intersection 50, union 150
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
    }

    #[test]
    fn conversions_round_trip() {
        let b = BBox::from_cxcywh(10.0, 20.0, 4.0, 6.0);
        assert_eq!(b, BBox::new(8.0, 17.0, 12.0, 23.0));
        assert_eq!(BBox::from_xywh(8.0, 17.0, 4.0, 6.0), b);
        assert_eq!(b.center(), (10.0, 20.0));
    }

    #[test]
    fn degenerate_boxes_are_invalid() {
        assert!(!BBox::new(1.0, 1.0, 1.0, 5.0).is_valid());
        assert!(!BBox::new(f32::NAN, 1.0, 2.0, 5.0).is_valid());
        assert_eq!(
            BBox::new(1.0, 1.0, 0.0, 0.0).iou(&BBox::new(1.0, 1.0, 0.0, 0.0)),
            0.0
        );
    }
}
