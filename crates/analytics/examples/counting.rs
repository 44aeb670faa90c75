//! Counting cost per frame: 10 lines, 10 zones (half of them concave),
//! 100 tracks random-walking over a 1280×720 frame. Prints microseconds
//! per frame and, given the pipeline's time per frame
//! (`--pipeline-ms MS`), the share counting adds. Run by
//! `bench/counting/run.sh`.

use std::time::Instant;

use peregrine_analytics::SpatialCounter;
use peregrine_core::{Anchor, BBox, Detection, FrameMeta, LineSpec, SpatialSpec, ZoneSpec};

/// xorshift64*: a fixed, dependency-free stream of numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn spec() -> SpatialSpec {
    let lines = (0..10)
        .map(|i| LineSpec {
            name: format!("l{i}"),
            start: (50.0 + 20.0 * i as f64, 60.0 * i as f64 + 30.0),
            end: (1230.0 - 15.0 * i as f64, 60.0 * i as f64 + 90.0),
        })
        .collect();
    let zones = (0..10)
        .map(|i| {
            let (x, y) = (100.0 * i as f64 + 40.0, 40.0 * i as f64 + 60.0);
            let points = if i % 2 == 0 {
                vec![
                    (x, y),
                    (x + 250.0, y),
                    (x + 250.0, y + 250.0),
                    (x, y + 250.0),
                ]
            } else {
                // A U (concave, 8 points).
                vec![
                    (x, y),
                    (x + 90.0, y),
                    (x + 90.0, y + 150.0),
                    (x + 160.0, y + 150.0),
                    (x + 160.0, y),
                    (x + 250.0, y),
                    (x + 250.0, y + 250.0),
                    (x, y + 250.0),
                ]
            };
            ZoneSpec {
                name: format!("z{i}"),
                points,
            }
        })
        .collect();
    SpatialSpec {
        lines,
        zones,
        anchor: Anchor::BottomCenter,
        interval_s: 60.0,
        calibration: Vec::new(),
    }
}

fn main() {
    let mut pipeline_ms = None;
    let mut frames = 9000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pipeline-ms" => pipeline_ms = args.next().and_then(|v| v.parse::<f64>().ok()),
            "--frames" => frames = args.next().and_then(|v| v.parse().ok()).unwrap_or(frames),
            other => {
                eprintln!("counting: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let spec = spec();
    let mut counter = SpatialCounter::new(&spec, 31).expect("valid spec");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // 100 tracks; every 300 frames a tenth of them are replaced by new ids.
    let mut pos: Vec<(u32, f64, f64)> = (0..100)
        .map(|i| (i + 1, rng.next() * 1280.0, rng.next() * 720.0))
        .collect();
    let mut next_id = 101;
    let (mut counts, mut ground) = (Vec::new(), Vec::new());
    let mut dets: Vec<Detection> = Vec::with_capacity(100);
    let mut crossings = 0u64;
    let mut busy = std::time::Duration::ZERO;
    for f in 0..frames {
        if f % 300 == 299 {
            for p in pos.iter_mut().take(10) {
                *p = (next_id, rng.next() * 1280.0, rng.next() * 720.0);
                next_id += 1;
            }
            pos.rotate_left(10);
        }
        dets.clear();
        for p in &mut pos {
            p.1 = (p.1 + (rng.next() - 0.5) * 16.0).clamp(0.0, 1279.0);
            p.2 = (p.2 + (rng.next() - 0.5) * 16.0).clamp(40.0, 719.0);
            let mut d = Detection::new(
                (p.0 % 3) as u16,
                0.8,
                BBox::new(
                    p.1 as f32 - 15.0,
                    p.2 as f32 - 40.0,
                    p.1 as f32 + 15.0,
                    p.2 as f32,
                ),
            );
            d.track_id = Some(p.0);
            dets.push(d);
        }
        let meta = FrameMeta {
            source: 0,
            index: f,
            pts: f as f64 / 30.0,
            width: 1280,
            height: 720,
        };
        let t = Instant::now();
        counter.observe(&meta, &dets, &mut counts, &mut ground);
        busy += t.elapsed();
    }
    counter.finish(0, &mut counts, &mut ground);
    for c in &counts {
        for l in &c.lines {
            crossings += l.values().map(|n| n.n_in + n.n_out).sum::<u64>();
        }
    }
    let us = busy.as_secs_f64() * 1e6 / frames as f64;
    println!(
        "counting: {frames} frames, 100 tracks, 10 lines, 10 zones: {us:.1} us/frame ({crossings} crossings, {} intervals)",
        counts.len()
    );
    if let Some(ms) = pipeline_ms {
        println!(
            "pipeline: {ms:.3} ms/frame; counting adds {:.2} % (goal < 5 %)",
            100.0 * us / 1000.0 / ms
        );
    }
}
