//! Cost of one `ByteTracker::update` with 50 moving objects.
//!
//! Objects move on circles with a period of 200 frames, so cycling through
//! the precomputed frames is continuous motion; every 10th detection is
//! low-score so the second association runs too.

use std::f32::consts::PI;

use criterion::{criterion_group, criterion_main, Criterion};
use peregrine_core::{BBox, Detection};
use peregrine_track::{ByteTrackConfig, ByteTracker};

const PERIOD: u64 = 200;
const OBJECTS: usize = 50;

/// `spacing` between grid cells in px: 190 keeps boxes apart, 45 makes
/// neighbours overlap so the assignment has real conflicts.
fn frames(spacing: f32) -> Vec<Vec<Detection>> {
    (0..PERIOD)
        .map(|f| {
            (0..OBJECTS)
                .map(|k| {
                    let (col, row) = ((k % 10) as f32, (k / 10) as f32);
                    let w = 2.0 * PI * (1 + k % 2) as f32 * f as f32 / PERIOD as f32;
                    let phase = k as f32;
                    let cx = 100.0 + spacing * col + 40.0 * (w + phase).cos();
                    let cy = 100.0 + spacing * 1.5 * row + 40.0 * (w + phase).sin();
                    let score = if (f as usize + k) % 10 == 0 {
                        0.3
                    } else {
                        0.85
                    };
                    Detection::new(0, score, BBox::from_cxcywh(cx, cy, 40.0, 80.0))
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("bytetrack_update_50_objects");
    for (name, spacing) in [("sparse", 190.0), ("crowded", 45.0)] {
        let mut frames = frames(spacing);
        let mut tracker = ByteTracker::new(ByteTrackConfig::default()).unwrap();
        let mut f = 0u64;
        // Warm up: confirm all tracks.
        for _ in 0..PERIOD {
            tracker.update(f, &mut frames[(f % PERIOD) as usize]);
            f += 1;
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                tracker.update(f, &mut frames[(f % PERIOD) as usize]);
                f += 1;
            })
        });
        let tracked = frames[((f - 1) % PERIOD) as usize]
            .iter()
            .filter(|d| d.track_id.is_some())
            .count();
        let ids = tracker.tracks().map(|t| t.id).max().unwrap_or(0);
        println!(
            "{name}: {tracked}/{OBJECTS} detections tracked in the last frame, {ids} ids issued"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
