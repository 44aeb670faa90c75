//! Packed 8-bit canvas to planar float tensor.

use crate::Normalization;

/// Writes one image into `dst` (one batch slot, `3 * w * h` floats, planar
/// CHW) from a packed 3-channel canvas already in the model's channel order.
pub fn fill_tensor(src: &[u8], norm: &Normalization, dst: &mut [f32]) {
    let hw = src.len() / 3;
    assert_eq!(dst.len(), hw * 3, "tensor slot does not match canvas size");
    let (c0, rest) = dst.split_at_mut(hw);
    let (c1, c2) = rest.split_at_mut(hw);
    let [m0, m1, m2] = norm.mean;
    let [s0, s1, s2] = norm.scale;
    for (i, px) in src.chunks_exact(3).enumerate() {
        c0[i] = (px[0] as f32 - m0) * s0;
        c1[i] = (px[1] as f32 - m1) * s1;
        c2[i] = (px[2] as f32 - m2) * s2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_to_planar_with_normalisation() {
        let src = [10u8, 20, 30, 40, 50, 60];
        let norm = Normalization {
            mean: [10.0, 0.0, 0.0],
            scale: [1.0, 0.5, 2.0],
        };
        let mut dst = [0f32; 6];
        fill_tensor(&src, &norm, &mut dst);
        assert_eq!(dst, [0.0, 30.0, 10.0, 25.0, 60.0, 120.0]);
    }
}
