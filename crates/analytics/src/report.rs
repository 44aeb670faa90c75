//! The counts of a run as one JSON document (`peregrine counts --json`, the
//! service's `GET /api/v1/runs/{id}/counts`), built from its stored
//! intervals.

use std::collections::BTreeMap;

use peregrine_core::{
    ClassId, Dwell, GroundTrack, InOut, IntervalCounts, Labels, Occupancy, SpatialSpec,
};
use serde_json::{json, Map, Value};

fn class_name(labels: &Labels, c: ClassId) -> String {
    labels.name(c)
}

fn line_json(name: &str, by_class: &BTreeMap<ClassId, InOut>, labels: &Labels) -> Value {
    let total = by_class.values().fold(InOut::default(), |a, c| InOut {
        n_in: a.n_in + c.n_in,
        n_out: a.n_out + c.n_out,
    });
    let classes: Map<String, Value> = by_class
        .iter()
        .map(|(&c, n)| (class_name(labels, c), json!({"in": n.n_in, "out": n.n_out})))
        .collect();
    json!({"name": name, "in": total.n_in, "out": total.n_out, "by_class": classes})
}

fn mean(o: &Occupancy, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        o.sum as f64 / frames as f64
    }
}

fn dwell_json(d: &Dwell) -> Value {
    json!({"mean": d.mean_s(), "max": (d.count > 0).then_some(d.max_s), "count": d.count})
}

struct ZoneTotal {
    occupancy: Occupancy,
    by_class: BTreeMap<ClassId, Occupancy>,
    entries: u64,
    exits: u64,
    dwell: Dwell,
}

fn zone_json(name: &str, z: &ZoneTotal, frames: u64, labels: &Labels) -> Value {
    let classes: Map<String, Value> = z
        .by_class
        .iter()
        .map(|(&c, o)| {
            (
                class_name(labels, c),
                json!({"max": o.max, "mean": mean(o, frames)}),
            )
        })
        .collect();
    json!({
        "name": name,
        "max": z.occupancy.max,
        "mean": mean(&z.occupancy, frames),
        "entries": z.entries,
        "exits": z.exits,
        "dwell_s": dwell_json(&z.dwell),
        "by_class": classes,
    })
}

/// `{"lines", "zones", "intervals"}` (and `"tracks"` with a
/// calibration): totals are the sums (occupancy: max and frame-weighted
/// mean) of the intervals.
pub fn counts_json(
    spec: &SpatialSpec,
    intervals: &[IntervalCounts],
    ground: &[GroundTrack],
    zone_areas_m2: Option<&[f64]>,
    labels: &Labels,
) -> Value {
    let mut lines: Vec<BTreeMap<ClassId, InOut>> = vec![BTreeMap::new(); spec.lines.len()];
    let mut zones: Vec<ZoneTotal> = (0..spec.zones.len())
        .map(|_| ZoneTotal {
            occupancy: Occupancy::default(),
            by_class: BTreeMap::new(),
            entries: 0,
            exits: 0,
            dwell: Dwell::default(),
        })
        .collect();
    let mut frames = 0;
    let mut per_interval = Vec::with_capacity(intervals.len());
    for iv in intervals {
        frames += iv.frames;
        for (total, l) in lines.iter_mut().zip(&iv.lines) {
            for (&c, n) in l {
                let e = total.entry(c).or_default();
                e.n_in += n.n_in;
                e.n_out += n.n_out;
            }
        }
        for (total, z) in zones.iter_mut().zip(&iv.zones) {
            total.occupancy.merge(&z.occupancy);
            for (&c, o) in &z.by_class {
                total.by_class.entry(c).or_default().merge(o);
            }
            total.entries += z.entries;
            total.exits += z.exits;
            total.dwell.merge(&z.dwell);
        }
        per_interval.push(json!({
            "start_s": iv.start_s,
            "end_s": iv.end_s,
            "frames": iv.frames,
            "lines": spec.lines.iter().zip(&iv.lines)
                .map(|(s, l)| line_json(&s.name, l, labels)).collect::<Vec<_>>(),
            "zones": spec.zones.iter().zip(&iv.zones).map(|(s, z)| zone_json(&s.name, &ZoneTotal {
                occupancy: z.occupancy,
                by_class: z.by_class.clone(),
                entries: z.entries,
                exits: z.exits,
                dwell: z.dwell,
            }, iv.frames, labels)).collect::<Vec<_>>(),
        }));
    }
    let zones_json: Vec<Value> = spec
        .zones
        .iter()
        .zip(&zones)
        .enumerate()
        .map(|(i, (s, z))| {
            let mut v = zone_json(&s.name, z, frames, labels);
            if let Some(a) = zone_areas_m2.and_then(|a| a.get(i)) {
                v["area_m2"] = json!(a);
            }
            v
        })
        .collect();
    let mut doc = json!({
        "interval_s": spec.interval_s,
        "anchor": spec.anchor.name(),
        "frames": frames,
        "lines": spec.lines.iter().zip(&lines)
            .map(|(s, l)| line_json(&s.name, l, labels)).collect::<Vec<_>>(),
        "zones": zones_json,
        "intervals": per_interval,
    });
    if !spec.calibration.is_empty() {
        let mut ground: Vec<&GroundTrack> = ground.iter().collect();
        ground.sort_by_key(|g| (g.source, g.track_id));
        doc["tracks"] = ground
            .iter()
            .map(|g| {
                json!({
                    "track_id": g.track_id,
                    "distance_m": g.distance_m,
                    "mean_speed_m_s": g.mean_speed_m_s,
                    "mean_speed_km_h": g.mean_speed_m_s.map(|v| v * 3.6),
                    "max_speed_m_s": g.max_speed_m_s,
                    "max_speed_km_h": g.max_speed_m_s.map(|v| v * 3.6),
                })
            })
            .collect::<Vec<_>>()
            .into();
    }
    doc
}
