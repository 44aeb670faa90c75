//! Stores a synthetic run with many detections, for the dashboard's
//! browser test and the load check:
//! `cargo run -p peregrine-server --example seed_run -- DB VIDEO FRAMES PER_FRAME`.
//! Prints the run id.

use std::path::PathBuf;

use peregrine_core::{BBox, Detection, FrameMeta};
use peregrine_store::{NewRun, RunOutcome, RunStatus, Store, VideoRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, video, frames, per_frame] = args.as_slice() else {
        return Err("usage: seed_run DB VIDEO FRAMES PER_FRAME".into());
    };
    let (frames, per_frame): (u64, usize) = (frames.parse()?, per_frame.parse()?);
    let video = std::fs::canonicalize(PathBuf::from(video))?;
    let mut store = Store::open(&PathBuf::from(db))?;
    // The file's real fingerprint: the service draws frame images only for
    // a video that still matches the one its run analysed.
    let fp = peregrine_media::file_fingerprint(&video)?;
    let video_id = store.upsert_video(&VideoRecord {
        path: video.display().to_string(),
        content_hash: fp.hash,
        size: fp.size,
        duration: frames as f64 / 30.0,
        fps: 30.0,
        width: 640,
        height: 480,
        codec: "h264".into(),
        frames_expected: frames,
    })?;
    let run = store.begin_run(&NewRun {
        video_id,
        cache_key: format!("seeded-{}-{frames}-{per_frame}", std::process::id()),
        model_path: "seeded".into(),
        model_hash: "seeded".into(),
        params: serde_json::json!({"track": {}}),
        versions: serde_json::json!({}),
    })?;
    let mut batch: Vec<(FrameMeta, Vec<Detection>)> = Vec::with_capacity(128);
    for f in 0..frames {
        let dets = (0..per_frame)
            .map(|i| {
                let (col, row) = ((i % 12) as f32, (i / 12) as f32);
                let x = col * 52.0 + (f % 20) as f32;
                let y = row * 48.0;
                let mut d = Detection::new(
                    if i % 3 == 0 { 2 } else { 0 },
                    0.3 + (i % 7) as f32 / 10.0,
                    BBox::new(x, y, x + 40.0, y + 40.0),
                );
                d.track_id = Some(i as u32 + 1);
                d
            })
            .collect();
        let meta = FrameMeta {
            source: 0,
            index: f,
            pts: f as f64 / 30.0,
            width: 640,
            height: 480,
        };
        batch.push((meta, dets));
        if batch.len() == 128 || f + 1 == frames {
            store.insert_frames(run, batch.iter().map(|(m, d)| (m, d.as_slice())))?;
            batch.clear();
        }
    }
    store.finish_run(
        run,
        &RunOutcome {
            status: RunStatus::Complete,
            error: None,
            frames,
            detections: frames * per_frame as u64,
            tracks: 0,
            fps: 0.0,
            timings: serde_json::json!({}),
            decode: serde_json::json!({}),
        },
    )?;
    println!("{run}");
    Ok(())
}
