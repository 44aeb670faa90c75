//! A plane-to-plane homography (image pixels → ground metres) from four or
//! more point pairs: the normalised direct linear transform (Hartley &
//! Zisserman, alg. 4.2) with `h33 = 1`, solved by least squares.

use peregrine_core::PointPair;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Homography {
    /// Row-major 3×3.
    pub m: [[f64; 3]; 3],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HomographyError {
    #[error("needs at least 4 point pairs, got {0}")]
    TooFew(usize),
    #[error("the points are degenerate (three or more on one line, or repeated)")]
    Degenerate,
    #[error("a coordinate is not finite")]
    NotFinite,
}

/// Similarity that moves the centroid to 0 and the mean distance to √2.
fn normaliser(points: &[(f64, f64)]) -> [[f64; 3]; 3] {
    let n = points.len() as f64;
    let (cx, cy) = points
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
    let mean = points
        .iter()
        .map(|p| (p.0 - cx).hypot(p.1 - cy))
        .sum::<f64>()
        / n;
    let s = if mean > 0.0 {
        std::f64::consts::SQRT_2 / mean
    } else {
        1.0
    };
    [[s, 0.0, -s * cx], [0.0, s, -s * cy], [0.0, 0.0, 1.0]]
}

fn apply(m: &[[f64; 3]; 3], (x, y): (f64, f64)) -> (f64, f64) {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    (
        (m[0][0] * x + m[0][1] * y + m[0][2]) / w,
        (m[1][0] * x + m[1][1] * y + m[1][2]) / w,
    )
}

fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

/// Inverse of a normaliser (a scale and a shift).
fn inverse_similarity(t: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let s = t[0][0];
    [
        [1.0 / s, 0.0, -t[0][2] / s],
        [0.0, 1.0 / s, -t[1][2] / s],
        [0.0, 0.0, 1.0],
    ]
}

/// Solves `a x = b` (8×8) by Gaussian elimination with partial pivoting.
fn solve8(mut a: [[f64; 8]; 8], mut b: [f64; 8]) -> Option<[f64; 8]> {
    let scale = a
        .iter()
        .flat_map(|r| r.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..8 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (v, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 8];
    for i in (0..8).rev() {
        let s: f64 = (i + 1..8).map(|k| a[i][k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    Some(x)
}

/// Whether three of the points lie (nearly) on one line.
fn has_collinear_triple(p: &[(f64, f64)]) -> bool {
    let n = p.len();
    for i in 0..n {
        for j in i + 1..n {
            for k in j + 1..n {
                let area =
                    (p[j].0 - p[i].0) * (p[k].1 - p[i].1) - (p[j].1 - p[i].1) * (p[k].0 - p[i].0);
                let scale = (p[j].0 - p[i].0).hypot(p[j].1 - p[i].1)
                    * (p[k].0 - p[i].0).hypot(p[k].1 - p[i].1);
                if area.abs() <= 1e-9 * scale.max(1e-300) {
                    return true;
                }
            }
        }
    }
    false
}

impl Homography {
    /// The homography mapping each pair's `image` to its `ground` (exactly
    /// for four pairs, in the least-squares sense for more).
    pub fn from_pairs(pairs: &[PointPair]) -> Result<Self, HomographyError> {
        if pairs.len() < 4 {
            return Err(HomographyError::TooFew(pairs.len()));
        }
        let finite = |p: (f64, f64)| p.0.is_finite() && p.1.is_finite();
        if !pairs.iter().all(|p| finite(p.image) && finite(p.ground)) {
            return Err(HomographyError::NotFinite);
        }
        let src: Vec<(f64, f64)> = pairs.iter().map(|p| p.image).collect();
        let dst: Vec<(f64, f64)> = pairs.iter().map(|p| p.ground).collect();
        if pairs.len() == 4 && (has_collinear_triple(&src) || has_collinear_triple(&dst)) {
            return Err(HomographyError::Degenerate);
        }
        let ts = normaliser(&src);
        let td = normaliser(&dst);
        // Normal equations of the 2n × 8 system.
        let mut ata = [[0.0; 8]; 8];
        let mut atb = [0.0; 8];
        for (s, d) in src.iter().zip(&dst) {
            let (x, y) = apply(&ts, *s);
            let (u, v) = apply(&td, *d);
            let rows = [
                ([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y], u),
                ([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y], v),
            ];
            for (r, rhs) in rows {
                for i in 0..8 {
                    for j in 0..8 {
                        ata[i][j] += r[i] * r[j];
                    }
                    atb[i] += r[i] * rhs;
                }
            }
        }
        let h = solve8(ata, atb).ok_or(HomographyError::Degenerate)?;
        let hn = [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]];
        let mut m = mul(&inverse_similarity(&td), &mul(&hn, &ts));
        let k = m[2][2];
        if !(k.is_finite() && k.abs() > 0.0) {
            return Err(HomographyError::Degenerate);
        }
        for row in &mut m {
            for v in row.iter_mut() {
                *v /= k;
            }
        }
        Ok(Homography { m })
    }

    /// Maps an image point to the ground.
    pub fn map(&self, p: (f64, f64)) -> (f64, f64) {
        apply(&self.m, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(h: &Homography, image: &[(f64, f64)]) -> Vec<PointPair> {
        image
            .iter()
            .map(|&p| PointPair {
                image: p,
                ground: h.map(p),
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_homography_from_four_and_from_many_pairs() {
        // A perspective view of a road: mild projective terms.
        let truth = Homography {
            m: [
                [0.05, 0.01, -3.0],
                [0.002, 0.09, -12.0],
                [0.0001, 0.0012, 1.0],
            ],
        };
        let four = [
            (100.0, 600.0),
            (1180.0, 610.0),
            (820.0, 300.0),
            (420.0, 290.0),
        ];
        for image in [four.to_vec(), {
            let mut v = four.to_vec();
            v.extend([(640.0, 450.0), (300.0, 500.0), (1000.0, 400.0)]);
            v
        }] {
            let h = Homography::from_pairs(&pairs(&truth, &image)).unwrap();
            for p in [(0.0, 0.0), (640.0, 360.0), (1279.0, 719.0), (50.0, 700.0)] {
                let (a, b) = (h.map(p), truth.map(p));
                assert!(
                    (a.0 - b.0).abs() < 1e-6 && (a.1 - b.1).abs() < 1e-6,
                    "{p:?}: {a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn a_rectangle_in_metres_maps_its_corners_exactly() {
        // A 3.5 m × 20 m lane seen as a trapezoid.
        let pairs = [
            ((500.0, 700.0), (0.0, 0.0)),
            ((780.0, 700.0), (3.5, 0.0)),
            ((700.0, 300.0), (3.5, 20.0)),
            ((580.0, 300.0), (0.0, 20.0)),
        ]
        .map(|(image, ground)| PointPair { image, ground });
        let h = Homography::from_pairs(&pairs).unwrap();
        for p in &pairs {
            let g = h.map(p.image);
            assert!((g.0 - p.ground.0).abs() < 1e-9 && (g.1 - p.ground.1).abs() < 1e-9);
        }
        let area = peregrine_core::polygon_area(&pairs.map(|p| h.map(p.image)));
        assert!((area - 70.0).abs() < 1e-6, "{area}");
    }

    #[test]
    fn degenerate_and_short_inputs_are_refused() {
        let pp = |image, ground| PointPair { image, ground };
        let line = [
            pp((0.0, 0.0), (0.0, 0.0)),
            pp((1.0, 1.0), (1.0, 0.0)),
            pp((2.0, 2.0), (1.0, 1.0)),
            pp((0.0, 5.0), (0.0, 1.0)),
        ];
        assert_eq!(
            Homography::from_pairs(&line),
            Err(HomographyError::Degenerate)
        );
        assert_eq!(
            Homography::from_pairs(&line[..3]),
            Err(HomographyError::TooFew(3))
        );
    }
}
