//! Counts of lines and zones per interval, tracks' ground motion, and the
//! frames of a run for replays.

use std::collections::BTreeMap;

use peregrine_core::{
    Dwell, FrameMeta, GroundTrack, InOut, IntervalCounts, Occupancy, SpatialSpec, ZoneInterval,
};
use rusqlite::params;

use crate::store::{detection_from_row, DetectionRow};
use crate::{Store, StoreError};

impl Store {
    /// Writes finished intervals and ground motion in one transaction;
    /// `spec` names the lines and zones.
    pub fn insert_spatial(
        &mut self,
        run_id: i64,
        spec: &SpatialSpec,
        counts: &[IntervalCounts],
        ground: &[GroundTrack],
    ) -> Result<(), StoreError> {
        let e = |e| self.db.err(e);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut iv = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO count_intervals (run_id, idx, source, start_s, end_s, frames) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            let mut line = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO line_counts (run_id, idx, line, class_id, n_in, n_out) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            let mut zone = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO zone_counts (run_id, idx, zone, occ_max, occ_sum, entries, exits, \
                     dwell_n, dwell_sum, dwell_max) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(e)?;
            let mut zone_class = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO zone_class_counts (run_id, idx, zone, class_id, occ_max, occ_sum) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            for c in counts {
                let idx = c.index as i64;
                iv.execute(params![
                    run_id,
                    idx,
                    c.source,
                    c.start_s,
                    c.end_s,
                    c.frames as i64
                ])
                .map_err(e)?;
                for (l, by_class) in spec.lines.iter().zip(&c.lines) {
                    for (class, n) in by_class {
                        line.execute(params![
                            run_id,
                            idx,
                            l.name,
                            class,
                            n.n_in as i64,
                            n.n_out as i64
                        ])
                        .map_err(e)?;
                    }
                }
                for (z, zi) in spec.zones.iter().zip(&c.zones) {
                    zone.execute(params![
                        run_id,
                        idx,
                        z.name,
                        zi.occupancy.max as i64,
                        zi.occupancy.sum as i64,
                        zi.entries as i64,
                        zi.exits as i64,
                        zi.dwell.count as i64,
                        zi.dwell.sum_s,
                        zi.dwell.max_s
                    ])
                    .map_err(e)?;
                    for (class, o) in &zi.by_class {
                        zone_class
                            .execute(params![
                                run_id,
                                idx,
                                z.name,
                                class,
                                o.max as i64,
                                o.sum as i64
                            ])
                            .map_err(e)?;
                    }
                }
            }
            let mut g = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO track_ground (run_id, track_id, distance_m, mean_speed, max_speed) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(e)?;
            for t in ground {
                g.execute(params![
                    run_id,
                    t.track_id,
                    t.distance_m,
                    t.mean_speed_m_s,
                    t.max_speed_m_s
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Runs `sql` (its `?1` is the run id) and hands each row to `f`.
    fn each_row(
        &self,
        sql: &str,
        run_id: i64,
        mut f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let e = |e| self.db.err(e);
        let mut stmt = self.conn.prepare(sql).map_err(e)?;
        let mut rows = stmt.query([run_id]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            f(r).map_err(e)?;
        }
        Ok(())
    }

    /// A run's intervals in time order, lines and zones in `spec`'s order
    /// (rows of names not in `spec` are left out).
    pub fn count_intervals(
        &self,
        run_id: i64,
        spec: &SpatialSpec,
    ) -> Result<Vec<IntervalCounts>, StoreError> {
        self.require_run(run_id)?;
        let n = |r: &rusqlite::Row, i: usize| r.get::<_, i64>(i).map(|v| v as u64);
        let mut out: BTreeMap<i64, IntervalCounts> = BTreeMap::new();
        self.each_row(
            "SELECT idx, source, start_s, end_s, frames FROM count_intervals WHERE run_id = ?1",
            run_id,
            |r| {
                let idx: i64 = r.get(0)?;
                out.insert(
                    idx,
                    IntervalCounts {
                        source: r.get(1)?,
                        index: idx as u64,
                        start_s: r.get(2)?,
                        end_s: r.get(3)?,
                        frames: n(r, 4)?,
                        lines: vec![BTreeMap::new(); spec.lines.len()],
                        zones: vec![ZoneInterval::default(); spec.zones.len()],
                    },
                );
                Ok(())
            },
        )?;
        let line_pos = |name: &str| spec.lines.iter().position(|l| l.name == name);
        let zone_pos = |name: &str| spec.zones.iter().position(|z| z.name == name);
        self.each_row(
            "SELECT idx, line, class_id, n_in, n_out FROM line_counts WHERE run_id = ?1",
            run_id,
            |r| {
                let (idx, name): (i64, String) = (r.get(0)?, r.get(1)?);
                if let (Some(iv), Some(p)) = (out.get_mut(&idx), line_pos(&name)) {
                    let counts = InOut {
                        n_in: n(r, 3)?,
                        n_out: n(r, 4)?,
                    };
                    iv.lines[p].insert(r.get(2)?, counts);
                }
                Ok(())
            },
        )?;
        self.each_row(
            "SELECT idx, zone, occ_max, occ_sum, entries, exits, dwell_n, dwell_sum, dwell_max \
             FROM zone_counts WHERE run_id = ?1",
            run_id,
            |r| {
                let (idx, name): (i64, String) = (r.get(0)?, r.get(1)?);
                if let (Some(iv), Some(p)) = (out.get_mut(&idx), zone_pos(&name)) {
                    let z = &mut iv.zones[p];
                    z.occupancy = Occupancy {
                        max: n(r, 2)?,
                        sum: n(r, 3)?,
                    };
                    z.entries = n(r, 4)?;
                    z.exits = n(r, 5)?;
                    z.dwell = Dwell {
                        count: n(r, 6)?,
                        sum_s: r.get(7)?,
                        max_s: r.get(8)?,
                    };
                }
                Ok(())
            },
        )?;
        self.each_row(
            "SELECT idx, zone, class_id, occ_max, occ_sum FROM zone_class_counts WHERE run_id = ?1",
            run_id,
            |r| {
                let (idx, name): (i64, String) = (r.get(0)?, r.get(1)?);
                if let (Some(iv), Some(p)) = (out.get_mut(&idx), zone_pos(&name)) {
                    let occupancy = Occupancy {
                        max: n(r, 3)?,
                        sum: n(r, 4)?,
                    };
                    iv.zones[p].by_class.insert(r.get(2)?, occupancy);
                }
                Ok(())
            },
        )?;
        Ok(out.into_values().collect())
    }

    /// Tracks' ground motion, by track id.
    pub fn ground_tracks(&self, run_id: i64) -> Result<Vec<GroundTrack>, StoreError> {
        self.require_run(run_id)?;
        let e = |e| self.db.err(e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT track_id, distance_m, mean_speed, max_speed FROM track_ground \
                 WHERE run_id = ?1 ORDER BY track_id",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(GroundTrack {
                    source: 0,
                    track_id: r.get(0)?,
                    distance_m: r.get(1)?,
                    mean_speed_m_s: r.get(2)?,
                    max_speed_m_s: r.get(3)?,
                })
            })
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        Ok(rows)
    }

    /// Streams a run's analysed frames in order with their detections.
    /// Runs stored before frames were recorded (schema 3) yield only the
    /// frames that have detections.
    pub fn for_each_frame<E>(
        &self,
        run_id: i64,
        width: u32,
        height: u32,
        mut f: impl FnMut(&FrameMeta, &[DetectionRow]) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.require_run(run_id)?;
        let e = |e| self.db.err(e);
        let has_frames = self
            .conn
            .prepare("SELECT 1 FROM frames WHERE run_id = ?1 LIMIT 1")
            .map_err(e)?
            .exists([run_id])
            .map_err(e)?;
        let sql = if has_frames {
            "SELECT f.frame, f.t, d.class_id, d.score, d.x1, d.y1, d.x2, d.y2, d.track_id, d.keypoints, \
             d.rowid IS NOT NULL FROM frames f LEFT JOIN detections d ON d.run_id = f.run_id AND d.frame = f.frame \
             WHERE f.run_id = ?1 ORDER BY f.frame, d.rowid"
        } else {
            "SELECT frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints, 1 \
             FROM detections WHERE run_id = ?1 ORDER BY frame, rowid"
        };
        let mut stmt = self.conn.prepare(sql).map_err(e)?;
        let mut rows = stmt.query([run_id]).map_err(e)?;
        let mut current: Option<FrameMeta> = None;
        let mut dets: Vec<DetectionRow> = Vec::new();
        let meta = |frame: u64, t: f64| FrameMeta {
            source: 0,
            index: frame,
            pts: t,
            width,
            height,
        };
        while let Some(r) = rows.next().map_err(e)? {
            let frame = r.get::<_, i64>(0).map_err(e)? as u64;
            let t: f64 = r.get(1).map_err(e)?;
            if current.is_some_and(|m| m.index != frame) {
                if let Err(x) = f(current.as_ref().expect("checked"), &dets) {
                    return Ok(Err(x));
                }
                dets.clear();
            }
            current = Some(meta(frame, t));
            if r.get::<_, bool>(10).map_err(e)? {
                dets.push(detection_from_row(r).map_err(e)?);
            }
        }
        if let Some(m) = current {
            if let Err(x) = f(&m, &dets) {
                return Ok(Err(x));
            }
        }
        Ok(Ok(()))
    }
}

impl Store {
    /// The stored counts of a run as `peregrine counts --json` prints them;
    /// `None` for a run analysed without lines, zones or calibration.
    pub fn counts_json(
        &self,
        run: &crate::RunRecord,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(spec) = run.spatial() else {
            return Ok(None);
        };
        let intervals = self.count_intervals(run.id, &spec)?;
        let ground = self.ground_tracks(run.id)?;
        Ok(Some(counts_doc(run, &spec, &intervals, &ground)))
    }
}

/// The counts document of a stored run, whichever engine stored it.
pub(crate) fn counts_doc(
    run: &crate::RunRecord,
    spec: &SpatialSpec,
    intervals: &[IntervalCounts],
    ground: &[GroundTrack],
) -> serde_json::Value {
    let areas = peregrine_analytics::SpatialCounter::new(spec, 0)
        .ok()
        .and_then(|c| c.zone_areas_m2());
    let mut doc =
        peregrine_analytics::counts_json(spec, intervals, ground, areas.as_deref(), &run.labels());
    doc["run_id"] = run.id.into();
    doc["replayed"] = false.into();
    doc
}
