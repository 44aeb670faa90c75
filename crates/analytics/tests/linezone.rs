//! Counting lines against supervision's `LineZone`: the fixture holds
//! supervision's own crossings on hand-made and random tracks
//! (`fixtures/linezone_reference.py` writes it).

use std::collections::BTreeMap;

use peregrine_analytics::{Crossing, LineCounter};
use peregrine_core::{Anchor, BBox, LineSpec};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/linezone_reference.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn crossings_equal_supervision_linezone_on_every_scenario() {
    let doc = fixture();
    let scenarios = doc["scenarios"].as_array().unwrap();
    assert!(scenarios.len() >= 10);
    let mut total = 0;
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        let l: Vec<f64> = s["line"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let anchor: Anchor = s["anchor"].as_str().unwrap().parse().unwrap();
        let mut line = LineCounter::new(&LineSpec {
            name: name.into(),
            start: (l[0], l[1]),
            end: (l[2], l[3]),
        });
        let mut got = Vec::new();
        let mut by_class: BTreeMap<(String, &str), u64> = BTreeMap::new();
        for (f, frame) in s["frames"].as_array().unwrap().iter().enumerate() {
            let tracked: Vec<_> = frame
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let v: Vec<f64> = d
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect();
                    let b = BBox::new(v[2] as f32, v[3] as f32, v[4] as f32, v[5] as f32);
                    (v[0] as u32, v[1] as u16, anchor.point(&b))
                })
                .collect();
            for (i, c) in line.frame(&tracked) {
                let dir = match c {
                    Crossing::In => "in",
                    Crossing::Out => "out",
                };
                *by_class.entry((tracked[i].1.to_string(), dir)).or_default() += 1;
                got.push(serde_json::json!([f, i, dir]));
            }
        }
        let e = &s["expected"];
        assert_eq!(
            &Value::from(got.clone()),
            &e["crossings"],
            "{name}: crossings"
        );
        for dir in ["in", "out"] {
            let want: BTreeMap<String, u64> = e[format!("{dir}_by_class")]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect();
            let have: BTreeMap<String, u64> = by_class
                .iter()
                .filter(|((_, d), _)| *d == dir)
                .map(|((c, _), n)| (c.clone(), *n))
                .collect();
            assert_eq!(have, want, "{name}: {dir} by class");
        }
        total += got.len();
    }
    // The random scenarios alone cross dozens of times.
    assert!(total > 50, "{total}");
}
