//! Constant-velocity Kalman filter on `(cx, cy, aspect, h)`, as in
//! ByteTrack's (and DeepSORT's) `kalman_filter.py`.
//!
//! A key design decision in this module is to store the 8×8 covariance as four
//! 2×2 blocks, one per measured coordinate and its velocity. Starting from the
//! reference's diagonal initial covariance, the motion model, the process and
//! measurement noises never couple two coordinates, so the full matrix stays
//! block-diagonal: the blocks are exact, not an approximation, and an update
//! needs no matrix inversion.

/// The four measured coordinates: centre x, centre y, aspect `w/h`, height.
pub type Xyah = [f64; 4];

/// Noise weights of the reference implementation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KalmanFilter {
    /// Position noise relative to the box height (reference: 1/20).
    pub std_weight_position: f64,
    /// Velocity noise relative to the box height (reference: 1/160).
    pub std_weight_velocity: f64,
}

impl Default for KalmanFilter {
    fn default() -> Self {
        Self {
            std_weight_position: 1.0 / 20.0,
            std_weight_velocity: 1.0 / 160.0,
        }
    }
}

/// Covariance block of one coordinate: `[[pp, pv], [pv, vv]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CovBlock {
    pub pp: f64,
    pub pv: f64,
    pub vv: f64,
}

/// Mean and covariance of one track.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KalmanState {
    /// `(cx, cy, a, h, vcx, vcy, va, vh)`, velocities per frame.
    pub mean: [f64; 8],
    /// Block `i` couples `mean[i]` with `mean[i + 4]`.
    pub cov: [CovBlock; 4],
}

impl KalmanState {
    /// The full 8×8 covariance, for comparison with the reference.
    pub fn covariance(&self) -> [[f64; 8]; 8] {
        let mut m = [[0.0; 8]; 8];
        for (i, b) in self.cov.iter().enumerate() {
            m[i][i] = b.pp;
            m[i][i + 4] = b.pv;
            m[i + 4][i] = b.pv;
            m[i + 4][i + 4] = b.vv;
        }
        m
    }

    /// `(cx, cy, a, h)` of the mean.
    pub fn xyah(&self) -> Xyah {
        [self.mean[0], self.mean[1], self.mean[2], self.mean[3]]
    }
}

impl KalmanFilter {
    /// Track from an unassociated measurement: zero velocity, variances
    /// scaled by the box height.
    pub fn initiate(&self, z: Xyah) -> KalmanState {
        let h = z[3];
        let sp = 2.0 * self.std_weight_position * h;
        let sv = 10.0 * self.std_weight_velocity * h;
        let pos_std = [sp, sp, 1e-2, sp];
        let vel_std = [sv, sv, 1e-5, sv];
        let mut cov = [CovBlock::default(); 4];
        for i in 0..4 {
            cov[i] = CovBlock {
                pp: pos_std[i] * pos_std[i],
                pv: 0.0,
                vv: vel_std[i] * vel_std[i],
            };
        }
        KalmanState {
            mean: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0],
            cov,
        }
    }

    /// One frame of constant-velocity motion, `x' = F x`, `P' = F P Fᵀ + Q`
    /// with `Q` scaled by the height before the step.
    pub fn predict(&self, s: &mut KalmanState) {
        let h = s.mean[3];
        let qp = self.std_weight_position * h;
        let qv = self.std_weight_velocity * h;
        let q_pos = [qp * qp, qp * qp, 1e-4, qp * qp];
        let q_vel = [qv * qv, qv * qv, 1e-10, qv * qv];
        for i in 0..4 {
            s.mean[i] += s.mean[i + 4];
            let b = s.cov[i];
            s.cov[i] = CovBlock {
                pp: b.pp + 2.0 * b.pv + b.vv + q_pos[i],
                pv: b.pv + b.vv,
                vv: b.vv + q_vel[i],
            };
        }
    }

    /// Corrects the state with a measurement. The innovation covariance
    /// `S = H P Hᵀ + R` is diagonal, so the gain is a per-coordinate division.
    pub fn update(&self, s: &mut KalmanState, z: Xyah) {
        let rp = self.std_weight_position * s.mean[3];
        let r = [rp * rp, rp * rp, 1e-2, rp * rp];
        for i in 0..4 {
            let b = s.cov[i];
            let innovation_var = b.pp + r[i];
            let k_pos = b.pp / innovation_var;
            let k_vel = b.pv / innovation_var;
            let innovation = z[i] - s.mean[i];
            s.mean[i] += k_pos * innovation;
            s.mean[i + 4] += k_vel * innovation;
            // P - K S Kᵀ
            s.cov[i] = CovBlock {
                pp: b.pp - k_pos * b.pp,
                pv: b.pv - k_pos * b.pv,
                vv: b.vv - k_vel * b.pv,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    // Box 50×100 centred at (200, 100): z = (200, 100, 0.5, 100).
    const Z: Xyah = [200.0, 100.0, 0.5, 100.0];

    #[test]
    fn initiate_by_hand() {
        // position std 2·(1/20)·100 = 10 → var 100; aspect std 1e-2 → 1e-4
        // velocity std 10·(1/160)·100 = 6.25 → var 39.0625; aspect vel 1e-5 → 1e-10
        let s = KalmanFilter::default().initiate(Z);
        assert_eq!(s.mean, [200.0, 100.0, 0.5, 100.0, 0.0, 0.0, 0.0, 0.0]);
        let c = s.covariance();
        let diag = [100.0, 100.0, 1e-4, 100.0, 39.0625, 39.0625, 1e-10, 39.0625];
        for (i, row) in c.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let want = if i == j { diag[i] } else { 0.0 };
                assert!(close(v, want), "P[{i}][{j}] = {v}");
            }
        }
    }

    #[test]
    fn predict_by_hand() {
        // Q: position std 100/20 = 5 → 25, velocity std 100/160 = 0.625 → 0.390625
        // pp = 100 + 2·0 + 39.0625 + 25 = 164.0625
        // pv = 0 + 39.0625 = 39.0625
        // vv = 39.0625 + 0.390625 = 39.453125
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(Z);
        kf.predict(&mut s);
        assert_eq!(s.xyah(), Z); // zero velocity
        assert!(close(s.cov[0].pp, 164.0625));
        assert!(close(s.cov[0].pv, 39.0625));
        assert!(close(s.cov[0].vv, 39.453125));
        // aspect: 1e-4 + 1e-10 + 1e-4, pv 1e-10, vv 1e-10 + 1e-10
        assert!(close(s.cov[2].pp, 2e-4 + 1e-10));
        assert!(close(s.cov[2].pv, 1e-10));
        assert!(close(s.cov[2].vv, 2e-10));
    }

    #[test]
    fn update_by_hand() {
        // After one predict, measure cx = 210 (innovation 10).
        // R = (100/20)² = 25, S = 164.0625 + 25 = 189.0625 = 3025/16
        // K_pos = 2625/3025 = 105/121, K_vel = 625/3025 = 25/121
        // cx = 200 + 10·105/121 = 208.6776859504..., vcx = 250/121 = 2.0661157024...
        // pp = 164.0625·25/189.0625 = 65625/3025 = 21.6942148760...
        // pv = 39.0625·25/189.0625 = 15625/3025 = 5.1652892562...
        // vv = 39.453125 − 39.0625²/189.0625 = 39.453125 − 8.0707644628... = 31.3823605371...
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(Z);
        kf.predict(&mut s);
        kf.update(&mut s, [210.0, 100.0, 0.5, 100.0]);
        assert!(close(s.mean[0], 200.0 + 1050.0 / 121.0));
        assert!(close(s.mean[4], 250.0 / 121.0));
        assert!(close(s.mean[1], 100.0) && close(s.mean[5], 0.0));
        assert!(close(s.cov[0].pp, 65625.0 / 3025.0));
        assert!(close(s.cov[0].pv, 15625.0 / 3025.0));
        assert!(close(s.cov[0].vv, 39.453125 - 1525.87890625 / 189.0625));
        // untouched y keeps the same numbers as x
        assert!(close(s.cov[1].pp, s.cov[0].pp));
    }

    #[test]
    fn predict_moves_by_velocity_each_step() {
        let kf = KalmanFilter::default();
        let mut s = kf.initiate(Z);
        s.mean[4] = 3.0;
        s.mean[5] = -2.0;
        let mut once = s;
        kf.predict(&mut once);
        for _ in 0..3 {
            kf.predict(&mut s);
        }
        assert!(close(once.mean[0], 203.0));
        assert!(close(s.mean[0], 209.0) && close(s.mean[1], 94.0));
        assert!(s.cov[0].pp > once.cov[0].pp);
    }
}
