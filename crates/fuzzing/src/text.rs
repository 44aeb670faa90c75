//! Text formats written by other tools: shot lists, MOTChallenge files,
//! `seqinfo.ini`, COCO JSON, class names files and TOML configuration.

use std::path::Path;

use peregrine_assemble::shotlist::{parse_shot_list, Point, ShotListFormat, ShotSource};
use peregrine_core::Labels;
use peregrine_eval::{FileRole, MotFile, MotOptions, SeqInfo, MAX_FRAME};

use crate::split_selector;

/// Shot lists: every entry keeps its problems beside it, points are within
/// their formats' ranges, sources are never empty paths.
pub fn shotlist(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return; // read_shot_list reads UTF-8 text only.
    };
    let format = [
        ShotListFormat::Json,
        ShotListFormat::Toml,
        ShotListFormat::Edl,
        ShotListFormat::Otio,
    ][sel as usize % 4];
    let base = Path::new("/shots");
    let Ok(shots) = parse_shot_list(text, format, base) else {
        return;
    };
    for s in &shots {
        if let ShotSource::File(p) = &s.source {
            assert!(
                p.starts_with(base) || p.is_absolute(),
                "source {p:?} not resolved against the list's folder"
            );
        }
        for p in [s.in_point, s.out_point] {
            if let Point::Timecode { m, s, .. } = p {
                assert!(m < 60 && s < 60, "timecode minutes/seconds out of range");
            }
        }
    }
}

/// The MOTChallenge row as `peregrine export --format mot` writes it, with
/// every value at full precision.
fn mot_line(r: &peregrine_eval::MotRow) -> String {
    format!(
        "{},{},{},{},{},{},{}\n",
        r.frame, r.id, r.x, r.y, r.w, r.h, r.conf
    )
}

/// MOTChallenge text: a parsed file's rows written back parse to the same
/// rows; a file scored against itself scores without panicking, with
/// every ratio in range.
pub fn motfile(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let role = if sel % 2 == 0 {
        FileRole::GroundTruth
    } else {
        FileRole::Prediction
    };
    let path = Path::new("fuzz.txt");
    let Ok(f) = MotFile::parse(path, text, role) else {
        return;
    };
    assert!(f.columns <= 10);
    let written: String = f.rows.iter().map(mot_line).collect();
    let again = MotFile::parse(path, &written, FileRole::Prediction)
        .unwrap_or_else(|e| panic!("written rows do not parse: {e}\n{written}"));
    assert_eq!(again.rows.len(), f.rows.len());
    for (a, b) in f.rows.iter().zip(&again.rows) {
        let key = |r: &peregrine_eval::MotRow| {
            (
                r.frame,
                r.id,
                r.x.to_bits(),
                r.y.to_bits(),
                r.w.to_bits(),
                r.h.to_bits(),
                r.conf.to_bits(),
            )
        };
        assert_eq!(key(a), key(b), "row changed through text: {written}");
    }
    if role == FileRole::GroundTruth {
        if let Ok((_, m)) =
            peregrine_eval::evaluate_sequence(&f, &again, None, MotOptions::default())
        {
            let c = &m.clear;
            for (name, v) in [("recall", c.recall), ("precision", c.precision)] {
                assert!(v.is_nan() || (0.0..=1.0).contains(&v), "{name} {v}");
            }
            assert!(c.mota.is_nan() || c.mota <= 1.0, "MOTA {}", c.mota);
        }
    }
}

/// `seqinfo.ini` as the evaluator reads it (length within its bound) and
/// as an image-sequence input reads it (a positive, finite frame rate).
pub fn seqinfo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = SeqInfo::parse(Path::new("seqinfo.ini"), text) {
        assert!(info.seq_length <= MAX_FRAME);
    }
    crate::video::image_sequence_ini(text);
}

/// A ground truth for results fuzzed alone: two images, two categories.
const COCO_GT: &str = r#"{"images":[{"id":1},{"id":2}],"categories":[{"id":1,"name":"person"},{"id":3,"name":"car"}],
"annotations":[{"image_id":1,"category_id":1,"bbox":[10,10,50,80]},{"image_id":2,"category_id":3,"bbox":[0,0,30,20],"iscrowd":0}]}"#;

/// COCO JSON: ground truth, or results against [`COCO_GT`]; what parses
/// scores without panicking, with AP in 0..=1 or COCOeval's -1.
pub fn coco(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let path = Path::new("fuzz.json");
    let data = if sel % 2 == 0 {
        match peregrine_eval::parse_coco_gt(path, rest) {
            Ok(mut d) => {
                // Its own boxes as results, scored 1.
                d.dets =
                    d.gt.iter()
                        .map(|g| peregrine_eval::CocoDet {
                            image_id: g.image_id,
                            category_id: g.category_id,
                            bbox: g.bbox,
                            score: 1.0,
                        })
                        .collect();
                d
            }
            Err(_) => return,
        }
    } else {
        let mut d = peregrine_eval::parse_coco_gt(Path::new("gt.json"), COCO_GT.as_bytes())
            .expect("the fixed ground truth parses");
        if peregrine_eval::parse_coco_dets(path, rest, &mut d).is_err() {
            return;
        }
        d
    };
    // Scoring is quadratic in the boxes per image: bound the work per input.
    if data.gt.len() + data.dets.len() > 2000 {
        return;
    }
    let report = data.evaluate();
    let ap = report.overall.ap;
    assert!(ap == -1.0 || (0.0..=1.0).contains(&ap), "AP {ap}");
}

/// Names files: what parses has names that are trimmed and not empty,
/// written back one per line they parse to the same list, and each name
/// looks up to a class of that name.
pub fn labels(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(labels) = Labels::parse(text) else {
        assert!(
            text.trim().is_empty(),
            "a names file with text has no names"
        );
        return;
    };
    let written = labels.names().join("\n");
    assert_eq!(Labels::parse(&written).as_ref(), Some(&labels));
    for (i, name) in labels.names().iter().enumerate().take(256) {
        assert!(!name.is_empty() && name.trim() == name);
        let id = labels
            .id_of(name)
            .unwrap_or_else(|e| panic!("{name:?} does not look up: {e}"));
        let found = labels.get(id).unwrap_or_else(|| panic!("{name:?} -> {id}"));
        assert!(found.eq_ignore_ascii_case(name) && id as usize <= i);
    }
}

/// TOML configuration: `streams.toml` or the server's config file (whose
/// values are checked when the service starts, not here).
pub fn config_toml(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if sel % 2 == 0 {
        let _ = peregrine_live::StreamsFile::parse(text);
    } else {
        let _ = peregrine_server::RawConfig::parse(Path::new("peregrine.toml"), text);
    }
}
