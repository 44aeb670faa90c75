//! Packets: reading them without leaking, the demuxer's "decoded but never
//! shown" mark, and timestamp arithmetic between timebases.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{ffi, format, Packet, Rational};

/// Reads the next packet of `ictx` into `packet`, releasing what it held
/// before: `av_read_frame` overwrites a packet without unreferencing it, so
/// reusing one packet across reads without this would leak every payload.
pub fn read_packet(
    packet: &mut Packet,
    ictx: &mut format::context::Input,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: the packet is a valid AVPacket owned by the caller; unref
    // leaves it blank and reusable.
    unsafe { ffi::av_packet_unref(ffmpeg::packet::Mut::as_mut_ptr(packet)) };
    packet.read(ictx)
}

/// Whether the demuxer marked `pkt` as decoded but never displayed (outside
/// an MP4 edit list).
pub fn is_discarded(pkt: &Packet) -> bool {
    // SAFETY: `pkt` wraps a valid AVPacket; `flags` is a plain int
    // (`Packet::flags` drops the bits it does not know, DISCARD among them).
    unsafe { (*ffmpeg::packet::Ref::as_ptr(pkt)).flags & ffi::AV_PKT_FLAG_DISCARD != 0 }
}

/// FFmpeg's seek timebase (`AV_TIME_BASE_Q`): file times in microseconds.
pub const MICROSECONDS: Rational = Rational(1, 1_000_000);

/// `v` in timebase `from`, expressed in `to`, rounded to nearest (in i128,
/// so it cannot overflow).
pub fn rescale(v: i64, from: Rational, to: Rational) -> i64 {
    let num = v as i128 * from.numerator() as i128 * to.denominator() as i128;
    let den = from.denominator() as i128 * to.numerator() as i128;
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    (if 2 * r >= den { q + 1 } else { q }) as i64
}

/// Frame duration in `tb` units at `fps` (at least 1).
pub fn frame_duration(fps: Rational, tb: Rational) -> i64 {
    rescale(1, fps.invert(), tb).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_to_nearest_without_overflow() {
        assert_eq!(rescale(1001, Rational(1, 30000), Rational(1, 90000)), 3003);
        assert_eq!(rescale(1, Rational(1, 3), Rational(1, 2)), 1);
        assert_eq!(rescale(-1, Rational(1, 3), Rational(1, 2)), -1);
        assert_eq!(
            rescale(i64::MAX / 2, Rational(1, 1000), Rational(1, 1000)),
            i64::MAX / 2
        );
    }

    #[test]
    fn a_frame_lasts_at_least_one_tick() {
        assert_eq!(frame_duration(Rational(25, 1), Rational(1, 12800)), 512);
        assert_eq!(frame_duration(Rational(1000, 1), Rational(1, 10)), 1);
    }
}
