//! Thresholded optimal assignment, equivalent to the reference's
//! `lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`.
//!
//! A key design decision in this module is to split the cost matrix into the
//! connected components of its admissible pairs (cost < thresh) before
//! solving: pairs at or above the threshold can never be matched, so the
//! optimum decomposes exactly. Tracking matrices are sparse (most IoUs are 0),
//! so most components are a single pair and only the tangled ones go to
//! `pathfinding`'s Kuhn-Munkres solver.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Fixed-point scale for the solver's integer weights.
const WEIGHT_SCALE: f32 = 1e6;

/// Reusable buffers so that a frame with sparse costs allocates nothing.
#[derive(Debug, Default)]
pub struct Assigner {
    parent: Vec<usize>,
    order: Vec<usize>,
    rows: Vec<usize>,
    cols: Vec<usize>,
}

impl Assigner {
    /// Minimises the total cost of matched pairs plus `thresh` for every pair
    /// left unmatched (half per side), like `lapjv` with `cost_limit`.
    /// `cost` is row-major `n_rows × n_cols`; matches `(row, col)` are
    /// appended to `out` sorted by row.
    pub fn solve(
        &mut self,
        cost: &[f32],
        n_rows: usize,
        n_cols: usize,
        thresh: f32,
        out: &mut Vec<(usize, usize)>,
    ) {
        debug_assert_eq!(cost.len(), n_rows * n_cols);
        let start = out.len();
        if n_rows == 0 || n_cols == 0 {
            return;
        }
        // Union-find over rows `0..n_rows` and columns `n_rows..`.
        let n = n_rows + n_cols;
        self.parent.clear();
        self.parent.extend(0..n);
        for r in 0..n_rows {
            for c in 0..n_cols {
                if cost[r * n_cols + c] < thresh {
                    let a = find(&mut self.parent, r);
                    let b = find(&mut self.parent, n_rows + c);
                    if a != b {
                        self.parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        for v in 0..n {
            let root = find(&mut self.parent, v);
            self.parent[v] = root;
        }
        // Vertices grouped by component root, then by index: deterministic.
        self.order.clear();
        self.order.extend(0..n);
        let parent = &self.parent;
        self.order.sort_unstable_by_key(|&v| (parent[v], v));

        let mut i = 0;
        while i < n {
            let root = self.parent[self.order[i]];
            let mut j = i;
            self.rows.clear();
            self.cols.clear();
            while j < n && self.parent[self.order[j]] == root {
                let v = self.order[j];
                if v < n_rows {
                    self.rows.push(v);
                } else {
                    self.cols.push(v - n_rows);
                }
                j += 1;
            }
            i = j;
            if self.rows.is_empty() || self.cols.is_empty() {
                continue;
            }
            if self.rows.len() == 1 || self.cols.len() == 1 {
                // A star: the single best pair is optimal (first on ties).
                let mut best: Option<(f32, usize, usize)> = None;
                for &r in &self.rows {
                    for &c in &self.cols {
                        let v = cost[r * n_cols + c];
                        if v < thresh && best.is_none_or(|(b, _, _)| v < b) {
                            best = Some((v, r, c));
                        }
                    }
                }
                if let Some((_, r, c)) = best {
                    out.push((r, c));
                }
                continue;
            }
            solve_component(cost, n_cols, thresh, &self.rows, &self.cols, out);
        }
        out[start..].sort_unstable();
    }
}

fn find(parent: &mut [usize], mut v: usize) -> usize {
    while parent[v] != v {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    v
}

/// Maximises `Σ (thresh − cost)` over admissible pairs with Kuhn-Munkres.
fn solve_component(
    cost: &[f32],
    n_cols: usize,
    thresh: f32,
    rows: &[usize],
    cols: &[usize],
    out: &mut Vec<(usize, usize)>,
) {
    let weight = |r: usize, c: usize| -> i64 {
        let v = cost[r * n_cols + c];
        if v < thresh {
            // At least 1 so that an admissible pair is never worth nothing.
            (((thresh - v) * WEIGHT_SCALE).round() as i64).max(1)
        } else {
            0
        }
    };
    // The solver needs rows ≤ columns.
    let transposed = rows.len() > cols.len();
    let (a, b) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let m = Matrix::from_fn(a.len(), b.len(), |(i, j)| {
        if transposed {
            weight(b[j], a[i])
        } else {
            weight(a[i], b[j])
        }
    });
    let (_, assign) = kuhn_munkres(&m);
    for (i, &j) in assign.iter().enumerate() {
        if m[(i, j)] > 0 {
            out.push(if transposed {
                (b[j], a[i])
            } else {
                (a[i], b[j])
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(cost: &[f32], r: usize, c: usize, t: f32) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        Assigner::default().solve(cost, r, c, t, &mut out);
        out
    }

    #[test]
    fn greedy_would_be_wrong() {
        // Greedy takes (0,0)=0.1 then (1,1)=0.9 (rejected): one match.
        // Optimal: (0,1)=0.2 + (1,0)=0.3 keeps both.
        let cost = [0.1, 0.2, 0.3, 0.9];
        assert_eq!(solve(&cost, 2, 2, 0.8), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn threshold_leaves_rows_unmatched() {
        // Both rows admit only col 2: (0,2) gains 0.3, (1,2) gains 0.01.
        let cost = [0.9, 0.85, 0.5, 1.0, 1.0, 0.79];
        assert_eq!(solve(&cost, 2, 3, 0.8), vec![(0, 2)]);
        // A cost equal to the threshold is not admissible.
        assert!(solve(&[0.8], 1, 1, 0.8).is_empty());
    }

    #[test]
    fn unmatched_beats_expensive_pair() {
        // lapjv semantics: matching (0,0)+(1,1) gains 0.05+0.05 = 0.1,
        // matching only (0,1) gains 0.6: the solver must prefer the latter.
        let cost = [0.75, 0.2, 0.95, 0.75];
        assert_eq!(solve(&cost, 2, 2, 0.8), vec![(0, 1)]);
    }

    #[test]
    fn more_rows_than_columns_and_separate_components() {
        // rows 0,1,2 compete for col 0; row 3 with col 1 alone.
        let cost = [
            0.3, 1.0, //
            0.1, 1.0, //
            0.2, 1.0, //
            1.0, 0.4,
        ];
        assert_eq!(solve(&cost, 4, 2, 0.8), vec![(1, 0), (3, 1)]);
        // 3×3 tangle solved by Kuhn-Munkres.
        let cost = [
            0.1, 0.2, 0.9, //
            0.2, 0.5, 0.3, //
            0.9, 0.3, 0.1,
        ];
        // (0,0)+(1,1)+(2,2) gains 0.7+0.3+0.7=1.7; (0,1)+(1,0)+(2,2) 0.6+0.6+0.7=1.9
        assert_eq!(solve(&cost, 3, 3, 0.8), vec![(0, 1), (1, 0), (2, 2)]);
        assert!(solve(&[], 0, 3, 0.8).is_empty());
    }
}
