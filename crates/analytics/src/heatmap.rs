//! Heat maps of anchor positions: counts on a grid of `cell`-pixel cells,
//! blurred, colour-mapped and blended over a still of the video.
//! Memory is the grid, whatever the number of observations.

/// Accumulated anchor positions of a `width × height` frame.
#[derive(Clone, Debug)]
pub struct Heatmap {
    width: u32,
    height: u32,
    cell: u32,
    cols: usize,
    rows: usize,
    grid: Vec<f32>,
    points: u64,
}

impl Heatmap {
    /// `cell`: grid cell size in pixels (≥ 1).
    pub fn new(width: u32, height: u32, cell: u32) -> Self {
        let cell = cell.max(1);
        let cols = width.div_ceil(cell).max(1) as usize;
        let rows = height.div_ceil(cell).max(1) as usize;
        Self {
            width,
            height,
            cell,
            cols,
            rows,
            grid: vec![0.0; cols * rows],
            points: 0,
        }
    }

    /// Adds one anchor; points outside the frame are ignored.
    pub fn add(&mut self, (x, y): (f64, f64)) {
        if !(x >= 0.0 && y >= 0.0 && x < f64::from(self.width) && y < f64::from(self.height)) {
            return;
        }
        let c = (x as u32 / self.cell) as usize;
        let r = (y as u32 / self.cell) as usize;
        self.grid[r * self.cols + c] += 1.0;
        self.points += 1;
    }

    pub fn points(&self) -> u64 {
        self.points
    }

    /// The grid after a box blur of `radius` cells run three times (close
    /// to a Gaussian), scaled to `0..=1` by its maximum.
    pub fn intensity(&self, radius: usize) -> Vec<f32> {
        let mut g = self.grid.clone();
        let mut tmp = vec![0.0f32; g.len()];
        for _ in 0..3 {
            blur_pass(&g, &mut tmp, self.cols, self.rows, radius, true);
            blur_pass(&tmp, &mut g, self.cols, self.rows, radius, false);
        }
        let max = g.iter().cloned().fold(0.0f32, f32::max);
        if max > 0.0 {
            for v in &mut g {
                *v /= max;
            }
        }
        g
    }

    /// Blends the colour-mapped intensity over `rgb` (packed RGB24,
    /// `width × height`, row stride `stride`): transparent where (almost)
    /// nothing was seen, up to 70 % opaque at the hottest cell. Colours
    /// follow the square root of the intensity, so that paths used less
    /// than the busiest spot still show.
    pub fn blend_over(&self, rgb: &mut [u8], stride: usize, radius: usize) {
        let heat = self.intensity(radius);
        for y in 0..self.height as usize {
            let r = (y / self.cell as usize).min(self.rows - 1);
            for x in 0..self.width as usize {
                let c = (x / self.cell as usize).min(self.cols - 1);
                let v = heat[r * self.cols + c].sqrt();
                if v <= 0.1 {
                    continue;
                }
                let colour = colormap(v);
                let alpha = 0.25 + 0.45 * v;
                let i = y * stride + x * 3;
                for k in 0..3 {
                    let base = f32::from(rgb[i + k]);
                    rgb[i + k] = (base + alpha * (f32::from(colour[k]) - base)).round() as u8;
                }
            }
        }
    }
}

fn blur_pass(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    rows: usize,
    radius: usize,
    horizontal: bool,
) {
    let (len, lines) = if horizontal {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |line: usize, i: usize| {
        if horizontal {
            line * cols + i
        } else {
            i * cols + line
        }
    };
    let norm = 1.0 / (2 * radius + 1) as f32;
    for line in 0..lines {
        for i in 0..len {
            let lo = i.saturating_sub(radius);
            let hi = (i + radius).min(len - 1);
            let s: f32 = (lo..=hi).map(|k| src[at(line, k)]).sum();
            dst[at(line, i)] = s * norm;
        }
    }
}

/// A "turbo"-like map from blue (0) through green and yellow to red (1).
pub fn colormap(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [48.0, 18.0, 160.0]),
        (0.25, [30.0, 150.0, 240.0]),
        (0.5, [60.0, 220.0, 90.0]),
        (0.75, [250.0, 200.0, 30.0]),
        (1.0, [220.0, 30.0, 20.0]),
    ];
    let v = v.clamp(0.0, 1.0);
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            return [0, 1, 2].map(|k| (ca[k] + t * (cb[k] - ca[k])).round() as u8);
        }
    }
    [220, 30, 20]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hottest_cell_is_where_most_anchors_fell_and_outside_points_are_ignored() {
        let mut h = Heatmap::new(100, 50, 10);
        for _ in 0..5 {
            h.add((55.0, 25.0));
        }
        h.add((5.0, 5.0));
        h.add((-1.0, 3.0));
        h.add((100.0, 3.0));
        assert_eq!(h.points(), 6);
        let heat = h.intensity(0);
        assert_eq!(heat[2 * 10 + 5], 1.0);
        assert!((heat[0] - 0.2).abs() < 1e-6);
        let mut rgb = vec![0u8; 100 * 50 * 3];
        h.blend_over(&mut rgb, 300, 1);
        let px = |x: usize, y: usize| &rgb[y * 300 + x * 3..y * 300 + x * 3 + 3];
        assert_eq!(px(55, 25), [154, 21, 14], "70 % of the hottest colour");
        assert_eq!(px(95, 45), [0, 0, 0]);
    }

    #[test]
    fn colormap_runs_blue_to_red() {
        assert_eq!(colormap(0.0), [48, 18, 160]);
        assert_eq!(colormap(1.0), [220, 30, 20]);
        assert!(colormap(0.5)[1] > 200);
    }
}
