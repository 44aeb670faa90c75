//! Frame indices and lost frames on real files: clean samples (variable
//! frame rate, B-frames, an AVI whose header doubles the frame rate, an
//! edit list, an image sequence) count 0, 1, 2, ... with nothing lost;
//! garbage written into the middle of a file leaves a gap that is counted,
//! and the frames after it keep their true indices.

use std::path::{Path, PathBuf};

use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{discover_inputs, DecodeStats, Decoder, DecoderOptions, Sampling};

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// (index, t) of every selected frame, and the decode statistics.
fn decode(path: &Path, sampling: Sampling) -> (Vec<(u64, f64)>, DecodeStats) {
    let spec = discover_inputs(&[path.to_path_buf()]).unwrap().remove(0);
    let mut dec = Decoder::open(
        &spec,
        &DecoderOptions {
            sampling,
            ..Default::default()
        },
    )
    .unwrap();
    let mut f = Video::empty();
    let mut out = vec![];
    while let Some(m) = dec.next_frame(&mut f).unwrap() {
        out.push((m.index, m.pts));
    }
    (out, dec.stats().clone())
}

#[test]
fn clean_samples_count_every_frame_and_lose_none() {
    let videos = data_dir().join("videos");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&videos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    inputs.push(data_dir().join("mot/PETS09-S2L1-480x360"));
    inputs.push(data_dir().join("mot/MOT17-04-mini8"));
    assert!(inputs.len() >= 12, "{inputs:?}");
    for path in &inputs {
        let (frames, stats) = decode(path, Sampling::default());
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(frames.len() > 5, "{name}");
        let indices: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(
            indices,
            (0..frames.len() as u64).collect::<Vec<_>>(),
            "{name}: indices count the frames"
        );
        assert_eq!(
            (stats.frames_lost, stats.gaps, stats.truncated),
            (0, 0, false),
            "{name}: {stats:?}"
        );
    }
}

/// The traffic sample (30 fps, 909 frames) with 200 KB of garbage written
/// into the middle.
fn damaged_copy(dir: &Path) -> PathBuf {
    let src = data_dir().join("videos/traffic_intersection_cctv_640x480.mp4");
    let mut bytes = std::fs::read(src).unwrap();
    let at = bytes.len() / 2;
    let mut x: u32 = 0x1234_5678;
    for b in &mut bytes[at..at + 200_000] {
        // xorshift: garbage that does not look like any start code pattern
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let out = dir.join("damaged.mp4");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn garbage_in_the_middle_leaves_a_counted_gap_and_true_indices() {
    let dir = tempfile::tempdir().unwrap();
    let bad = damaged_copy(dir.path());
    for sampling in [
        Sampling::default(),
        Sampling {
            every: 3,
            ..Default::default()
        },
    ] {
        let (frames, stats) = decode(&bad, sampling);
        let decoded = stats.frames_decoded;
        assert!(decoded < 850, "frames are missing: {stats:?}");
        let missing = 909 - decoded;
        assert!(
            stats.frames_lost.abs_diff(missing) <= 2,
            "lost {} of {missing} missing ({sampling:?}): {stats:?}",
            stats.frames_lost
        );
        assert!(stats.gaps >= 1 && !stats.truncated, "{stats:?}");
        for (index, t) in &frames {
            assert_eq!(*index, (t * 30.0).round() as u64, "frame at {t} s");
        }
        assert!(frames.last().unwrap().0 >= 900, "{:?}", frames.last());
    }
}
