//! Motion gating (`--motion-gate`): a cheap test on a frame's luma, run
//! before the detector, that lets a static camera's frames cost decode
//! only. The frame is reduced to a grid of block means (about 64 × 48) and
//! compared with a slowly updated background; it counts as moving when
//! enough blocks changed. A scene that has settled (no change from one
//! analysed frame to the next, [`SETTLE`] times in a row) becomes the
//! background at once: a camera whose picture stops moving is gated from
//! its third still frame, not after the slow background has absorbed
//! whatever stopped (seconds; tens of seconds at a shed rate).

/// Grid columns and rows the luma plane is reduced to.
const COLS: usize = 64;
const ROWS: usize = 48;
/// Change of a block's mean brightness (0-255) that counts as motion.
const BLOCK_DELTA: f32 = 12.0;
/// Weight of a new frame in the background.
const ALPHA: f32 = 0.05;
/// Still frames in a row after which the picture is the background.
const SETTLE: u32 = 2;

pub struct MotionGate {
    /// Fraction of blocks that must change.
    min_area: f32,
    background: Vec<f32>,
    current: Vec<f32>,
    previous: Vec<f32>,
    /// Analysed frames in a row that did not change from the one before.
    still: u32,
    seen: bool,
}

impl MotionGate {
    /// `min_area`: the fraction of the picture (0-1) that must change.
    pub fn new(min_area: f64) -> Self {
        Self {
            min_area: min_area.clamp(0.0, 1.0) as f32,
            background: vec![0.0; COLS * ROWS],
            current: vec![0.0; COLS * ROWS],
            previous: vec![0.0; COLS * ROWS],
            still: 0,
            seen: false,
        }
    }

    /// Whether anything moves in the luma plane `y` (`width` × `height`,
    /// rows `stride` bytes apart). The first frame always moves.
    pub fn moving(&mut self, y: &[u8], stride: usize, width: usize, height: usize) -> bool {
        if width == 0 || height == 0 || y.len() < stride * (height - 1) + width {
            return true;
        }
        let (cols, rows) = (COLS.min(width), ROWS.min(height));
        for r in 0..rows {
            let (y0, y1) = (
                r * height / rows,
                ((r + 1) * height / rows).max(r * height / rows + 1),
            );
            for c in 0..cols {
                let (x0, x1) = (
                    c * width / cols,
                    ((c + 1) * width / cols).max(c * width / cols + 1),
                );
                // Every other pixel of every other row: plenty for a mean.
                let (mut sum, mut n) = (0u32, 0u32);
                for yy in (y0..y1).step_by(2) {
                    let row = &y[yy * stride..yy * stride + width];
                    for &p in row[x0..x1].iter().step_by(2) {
                        sum += u32::from(p);
                        n += 1;
                    }
                }
                self.current[r * COLS + c] = sum as f32 / n.max(1) as f32;
            }
        }
        if !self.seen {
            self.seen = true;
            self.background.copy_from_slice(&self.current);
            self.previous.copy_from_slice(&self.current);
            return true;
        }
        let enough =
            |changed: usize| changed as f32 >= self.min_area * (rows * cols) as f32 && changed > 0;
        let stepped = self.changed_blocks(&self.previous, cols, rows);
        self.previous.copy_from_slice(&self.current);
        if enough(stepped) {
            self.still = 0;
        } else {
            self.still += 1;
            if self.still == SETTLE {
                self.background.copy_from_slice(&self.current);
            }
        }
        let changed = self.changed_blocks(&self.background, cols, rows);
        for r in 0..rows {
            for c in 0..cols {
                let i = r * COLS + c;
                self.background[i] += ALPHA * (self.current[i] - self.background[i]);
            }
        }
        enough(changed)
    }

    /// Blocks of the current frame that differ from `reference`.
    fn changed_blocks(&self, reference: &[f32], cols: usize, rows: usize) -> usize {
        (0..rows)
            .flat_map(|r| (0..cols).map(move |c| r * COLS + c))
            .filter(|&i| (self.current[i] - reference[i]).abs() > BLOCK_DELTA)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, square_at: Option<usize>) -> Vec<u8> {
        let mut f = vec![100u8; w * h];
        if let Some(x0) = square_at {
            for y in 40..100 {
                for x in x0..x0 + 60 {
                    f[y * w + x] = 230;
                }
            }
        }
        f
    }

    #[test]
    fn a_still_picture_is_not_motion_and_a_moving_object_is() {
        let (w, h) = (320, 240);
        let mut g = MotionGate::new(0.005);
        assert!(g.moving(&frame(w, h, None), w, w, h), "first frame");
        for _ in 0..10 {
            assert!(!g.moving(&frame(w, h, None), w, w, h));
        }
        assert!(g.moving(&frame(w, h, Some(50)), w, w, h));
        assert!(g.moving(&frame(w, h, Some(120)), w, w, h));
    }

    #[test]
    fn a_picture_that_stops_moving_is_gated_from_its_third_still_frame() {
        let (w, h) = (320, 240);
        let mut g = MotionGate::new(0.005);
        g.moving(&frame(w, h, None), w, w, h);
        for x in 0..10 {
            assert!(g.moving(&frame(w, h, Some(20 + x * 15)), w, w, h));
        }
        // The object stops at 170: the slow background still differs
        // there (and where it came from), but the picture has settled.
        let v: Vec<bool> = (0..5)
            .map(|_| g.moving(&frame(w, h, Some(170)), w, w, h))
            .collect();
        assert_eq!(v, [true, true, false, false, false]);
        // It moves again: motion at once.
        assert!(g.moving(&frame(w, h, Some(200)), w, w, h));
    }

    #[test]
    fn sensor_noise_is_not_motion() {
        let (w, h) = (320, 240);
        let mut g = MotionGate::new(0.005);
        let mut seed = 7u32;
        for _ in 0..20 {
            let f: Vec<u8> = (0..w * h)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    100 + ((seed >> 16) % 9) as u8
                })
                .collect();
            g.moving(&f, w, w, h);
        }
        let f = vec![104u8; w * h];
        assert!(!g.moving(&f, w, w, h));
    }

    #[test]
    fn a_big_enough_area_is_required() {
        let (w, h) = (320, 240);
        let mut g = MotionGate::new(0.5);
        g.moving(&frame(w, h, None), w, w, h);
        assert!(!g.moving(&frame(w, h, Some(50)), w, w, h), "a small object");
    }
}
