//! Optimal one-to-one assignment, on top of `pathfinding`'s Kuhn–Munkres.
//!
//! A key design decision here is to solve on integer weights: the reference
//! tools use scipy's `linear_sum_assignment` on floats, and `kuhn_munkres`
//! needs `Ord` weights, so costs in `[0, 1]` are scaled to integers with a
//! resolution of 1e-9 (min-cost) or 1e-12 (max-score). Rows and columns that
//! have no admissible pair are dropped before solving: they can never be
//! matched, and dense crowds become small problems.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Reusable index buffers for per-frame matching.
#[derive(Default)]
pub(crate) struct Assigner {
    col_used: Vec<bool>,
    rows: Vec<usize>,
    cols: Vec<usize>,
    weights: Vec<i64>,
}

const COST_SCALE: f64 = 1e9;
const SCORE_SCALE: f64 = 1e12;

impl Assigner {
    /// Minimum-cost matching with forbidden pairs, as motmetrics solves it:
    /// the largest number of admissible pairs first, then the least total
    /// cost among those. `cost(r, c)` returns `None` for a forbidden pair and
    /// otherwise a cost in `[0, 1]`. Calls `out(r, c)` for each matched pair.
    pub(crate) fn min_cost(
        &mut self,
        nrows: usize,
        ncols: usize,
        cost: impl Fn(usize, usize) -> Option<f64>,
        mut out: impl FnMut(usize, usize),
    ) {
        self.rows.clear();
        self.cols.clear();
        let mut col_used = std::mem::take(&mut self.col_used);
        col_used.clear();
        col_used.resize(ncols, false);
        for r in 0..nrows {
            let mut any = false;
            for (c, used) in col_used.iter_mut().enumerate() {
                if cost(r, c).is_some() {
                    any = true;
                    *used = true;
                }
            }
            if any {
                self.rows.push(r);
            }
        }
        if self.rows.is_empty() {
            return;
        }
        self.cols.extend(
            col_used
                .iter()
                .enumerate()
                .filter(|(_, u)| **u)
                .map(|(c, _)| c),
        );
        let n = self.rows.len().min(self.cols.len()) as i64;
        let big = (n + 1) * COST_SCALE as i64;
        let weight = |r: usize, c: usize| match cost(r, c) {
            Some(d) => big - (d * COST_SCALE).round() as i64,
            None => 0,
        };
        self.solve(weight, |r, c| cost(r, c).is_some(), &mut out);
    }

    /// Maximum-score full assignment (scipy `linear_sum_assignment(-score)`),
    /// reporting only pairs whose score is positive: a zero-score pair is
    /// never a match for the callers. Scores are in `[0, 1]`.
    pub(crate) fn max_score(
        &mut self,
        nrows: usize,
        ncols: usize,
        score: impl Fn(usize, usize) -> f64,
        out: impl FnMut(usize, usize),
    ) {
        self.max_weight(
            nrows,
            ncols,
            |r, c| (score(r, c) * SCORE_SCALE).round() as i64,
            out,
        );
    }

    /// Maximum-weight matching on non-negative integer weights; pairs of
    /// weight zero are never reported.
    pub(crate) fn max_weight(
        &mut self,
        nrows: usize,
        ncols: usize,
        weight: impl Fn(usize, usize) -> i64,
        mut out: impl FnMut(usize, usize),
    ) {
        self.rows.clear();
        self.cols.clear();
        let mut col_used = std::mem::take(&mut self.col_used);
        col_used.clear();
        col_used.resize(ncols, false);
        for r in 0..nrows {
            let mut any = false;
            for (c, used) in col_used.iter_mut().enumerate() {
                if weight(r, c) > 0 {
                    any = true;
                    *used = true;
                }
            }
            if any {
                self.rows.push(r);
            }
        }
        if self.rows.is_empty() {
            return;
        }
        self.cols.extend(
            col_used
                .iter()
                .enumerate()
                .filter(|(_, u)| **u)
                .map(|(c, _)| c),
        );
        self.solve(&weight, |r, c| weight(r, c) > 0, &mut out);
    }

    fn solve(
        &mut self,
        weight: impl Fn(usize, usize) -> i64,
        keep: impl Fn(usize, usize) -> bool,
        out: &mut impl FnMut(usize, usize),
    ) {
        let (rows, cols) = (&self.rows, &self.cols);
        if rows.len() == 1 || cols.len() == 1 {
            // A single row or column: the best single pair is optimal.
            let mut best: Option<(i64, usize, usize)> = None;
            for &r in rows {
                for &c in cols {
                    let w = weight(r, c);
                    if best.is_none_or(|(bw, _, _)| w > bw) {
                        best = Some((w, r, c));
                    }
                }
            }
            if let Some((_, r, c)) = best {
                if keep(r, c) {
                    out(r, c);
                }
            }
            return;
        }
        let transpose = rows.len() > cols.len();
        let (a, b) = if transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        self.weights.clear();
        for &i in a {
            for &j in b {
                let (r, c) = if transpose { (j, i) } else { (i, j) };
                self.weights.push(weight(r, c));
            }
        }
        let m = Matrix::from_vec(a.len(), b.len(), std::mem::take(&mut self.weights))
            .expect("matrix dimensions match the buffer");
        let (_, assignment) = kuhn_munkres(&m);
        for (ia, &jb) in assignment.iter().enumerate() {
            let (r, c) = if transpose {
                (b[jb], a[ia])
            } else {
                (a[ia], b[jb])
            };
            if keep(r, c) {
                out(r, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_cost_prefers_more_pairs_over_lower_cost() {
        // Row 0 could take col 0 at cost 0.0, but then row 1 (only col 0)
        // is unmatched; two pairs at higher cost win, as in motmetrics.
        let cost = [Some(0.0), Some(0.4), Some(0.1), None];
        let mut got = Vec::new();
        Assigner::default().min_cost(2, 2, |r, c| cost[r * 2 + c], |r, c| got.push((r, c)));
        got.sort();
        assert_eq!(got, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn max_score_skips_zero_pairs() {
        let s = [0.9, 0.8, 0.0, 0.0, 0.0, 0.0];
        let mut got = Vec::new();
        Assigner::default().max_score(3, 2, |r, c| s[r * 2 + c], |r, c| got.push((r, c)));
        assert_eq!(got, vec![(0, 0)]);
    }

    #[test]
    fn max_score_is_global_not_greedy() {
        // Greedy would take (0,0)=0.9 then (1,1)=0.1; optimal is 0.8+0.85.
        let s = [0.9, 0.8, 0.85, 0.1];
        let mut got = Vec::new();
        Assigner::default().max_score(2, 2, |r, c| s[r * 2 + c], |r, c| got.push((r, c)));
        got.sort();
        assert_eq!(got, vec![(0, 1), (1, 0)]);
    }
}
