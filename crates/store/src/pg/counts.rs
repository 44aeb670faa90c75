//! Counts of lines and zones, ground motion and analysed frames on
//! PostgreSQL (the same tables and meaning as SQLite's, see
//! `crate::counts`).

use std::collections::BTreeMap;

use peregrine_core::{
    Dwell, FrameMeta, GroundTrack, InOut, IntervalCounts, Occupancy, SpatialSpec, ZoneInterval,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Client;

use super::{detection_from_row, PgStore};
use crate::store::DetectionRow;
use crate::{RunRecord, StoreError};

/// Writes finished intervals and ground motion in one transaction.
pub(super) fn insert_spatial(
    c: &mut Client,
    run_id: i64,
    spec: &SpatialSpec,
    counts: &[IntervalCounts],
    ground: &[GroundTrack],
) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    let iv = tx.prepare(
        "INSERT INTO count_intervals (run_id, idx, source, start_s, end_s, frames) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, idx) DO UPDATE SET \
         source = excluded.source, start_s = excluded.start_s, end_s = excluded.end_s, frames = excluded.frames",
    )?;
    let line = tx.prepare(
        "INSERT INTO line_counts (run_id, idx, line, class_id, n_in, n_out) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (run_id, idx, line, class_id) DO UPDATE SET n_in = excluded.n_in, n_out = excluded.n_out",
    )?;
    let zone = tx.prepare(
        "INSERT INTO zone_counts (run_id, idx, zone, occ_max, occ_sum, entries, exits, dwell_n, dwell_sum, dwell_max) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (run_id, idx, zone) DO UPDATE SET \
         occ_max = excluded.occ_max, occ_sum = excluded.occ_sum, entries = excluded.entries, exits = excluded.exits, \
         dwell_n = excluded.dwell_n, dwell_sum = excluded.dwell_sum, dwell_max = excluded.dwell_max",
    )?;
    let zone_class = tx.prepare(
        "INSERT INTO zone_class_counts (run_id, idx, zone, class_id, occ_max, occ_sum) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (run_id, idx, zone, class_id) DO UPDATE SET occ_max = excluded.occ_max, occ_sum = excluded.occ_sum",
    )?;
    for c in counts {
        let idx = c.index as i64;
        tx.execute(
            &iv,
            &[
                &run_id,
                &idx,
                &i64::from(c.source),
                &c.start_s,
                &c.end_s,
                &(c.frames as i64),
            ],
        )?;
        for (l, by_class) in spec.lines.iter().zip(&c.lines) {
            for (class, n) in by_class {
                tx.execute(
                    &line,
                    &[
                        &run_id,
                        &idx,
                        &l.name,
                        &i32::from(*class),
                        &(n.n_in as i64),
                        &(n.n_out as i64),
                    ],
                )?;
            }
        }
        for (z, zi) in spec.zones.iter().zip(&c.zones) {
            tx.execute(
                &zone,
                &[
                    &run_id,
                    &idx,
                    &z.name,
                    &(zi.occupancy.max as i64),
                    &(zi.occupancy.sum as i64),
                    &(zi.entries as i64),
                    &(zi.exits as i64),
                    &(zi.dwell.count as i64),
                    &zi.dwell.sum_s,
                    &zi.dwell.max_s,
                ],
            )?;
            for (class, o) in &zi.by_class {
                tx.execute(
                    &zone_class,
                    &[
                        &run_id,
                        &idx,
                        &z.name,
                        &i32::from(*class),
                        &(o.max as i64),
                        &(o.sum as i64),
                    ],
                )?;
            }
        }
    }
    let g = tx.prepare(
        "INSERT INTO track_ground (run_id, track_id, distance_m, mean_speed, max_speed) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (run_id, track_id) DO UPDATE SET distance_m = excluded.distance_m, \
         mean_speed = excluded.mean_speed, max_speed = excluded.max_speed",
    )?;
    for t in ground {
        tx.execute(
            &g,
            &[
                &run_id,
                &i64::from(t.track_id),
                &t.distance_m,
                &t.mean_speed_m_s,
                &t.max_speed_m_s,
            ],
        )?;
    }
    tx.commit()
}

impl PgStore {
    fn rows(&self, sql: &str, run_id: i64) -> Result<Vec<postgres::Row>, StoreError> {
        self.client()
            .query(sql, &[&run_id])
            .map_err(|e| self.err(e))
    }

    /// A run's intervals in time order, lines and zones in `spec`'s order.
    pub fn count_intervals(
        &self,
        run_id: i64,
        spec: &SpatialSpec,
    ) -> Result<Vec<IntervalCounts>, StoreError> {
        self.require_run(run_id)?;
        let n = |r: &postgres::Row, i: usize| r.get::<_, i64>(i) as u64;
        let mut out: BTreeMap<i64, IntervalCounts> = BTreeMap::new();
        for r in self.rows(
            "SELECT idx, source, start_s, end_s, frames FROM count_intervals WHERE run_id = $1",
            run_id,
        )? {
            let idx: i64 = r.get(0);
            out.insert(
                idx,
                IntervalCounts {
                    source: r.get::<_, i64>(1) as u32,
                    index: idx as u64,
                    start_s: r.get(2),
                    end_s: r.get(3),
                    frames: n(&r, 4),
                    lines: vec![BTreeMap::new(); spec.lines.len()],
                    zones: vec![ZoneInterval::default(); spec.zones.len()],
                },
            );
        }
        let line_pos = |name: &str| spec.lines.iter().position(|l| l.name == name);
        let zone_pos = |name: &str| spec.zones.iter().position(|z| z.name == name);
        for r in self.rows(
            "SELECT idx, line, class_id, n_in, n_out FROM line_counts WHERE run_id = $1",
            run_id,
        )? {
            let (idx, name): (i64, &str) = (r.get(0), r.get(1));
            if let (Some(iv), Some(p)) = (out.get_mut(&idx), line_pos(name)) {
                let counts = InOut {
                    n_in: n(&r, 3),
                    n_out: n(&r, 4),
                };
                iv.lines[p].insert(r.get::<_, i32>(2) as u16, counts);
            }
        }
        for r in self.rows(
            "SELECT idx, zone, occ_max, occ_sum, entries, exits, dwell_n, dwell_sum, dwell_max \
             FROM zone_counts WHERE run_id = $1",
            run_id,
        )? {
            let (idx, name): (i64, &str) = (r.get(0), r.get(1));
            if let (Some(iv), Some(p)) = (out.get_mut(&idx), zone_pos(name)) {
                let z = &mut iv.zones[p];
                z.occupancy = Occupancy {
                    max: n(&r, 2),
                    sum: n(&r, 3),
                };
                z.entries = n(&r, 4);
                z.exits = n(&r, 5);
                z.dwell = Dwell {
                    count: n(&r, 6),
                    sum_s: r.get(7),
                    max_s: r.get(8),
                };
            }
        }
        for r in self.rows(
            "SELECT idx, zone, class_id, occ_max, occ_sum FROM zone_class_counts WHERE run_id = $1",
            run_id,
        )? {
            let (idx, name): (i64, &str) = (r.get(0), r.get(1));
            if let (Some(iv), Some(p)) = (out.get_mut(&idx), zone_pos(name)) {
                let occupancy = Occupancy {
                    max: n(&r, 3),
                    sum: n(&r, 4),
                };
                iv.zones[p]
                    .by_class
                    .insert(r.get::<_, i32>(2) as u16, occupancy);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Tracks' ground motion, by track id.
    pub fn ground_tracks(&self, run_id: i64) -> Result<Vec<GroundTrack>, StoreError> {
        self.require_run(run_id)?;
        Ok(self
            .rows(
                "SELECT track_id, distance_m, mean_speed, max_speed FROM track_ground \
                 WHERE run_id = $1 ORDER BY track_id",
                run_id,
            )?
            .iter()
            .map(|r| GroundTrack {
                source: 0,
                track_id: r.get::<_, i64>(0) as u32,
                distance_m: r.get(1),
                mean_speed_m_s: r.get(2),
                max_speed_m_s: r.get(3),
            })
            .collect())
    }

    /// The stored counts of a run as `peregrine counts --json` prints them.
    pub fn counts_json(&self, run: &RunRecord) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(spec) = run.spatial() else {
            return Ok(None);
        };
        let intervals = self.count_intervals(run.id, &spec)?;
        let ground = self.ground_tracks(run.id)?;
        Ok(Some(crate::counts::counts_doc(
            run, &spec, &intervals, &ground,
        )))
    }

    /// Streams a run's analysed frames in order with their detections.
    pub fn for_each_frame<E>(
        &self,
        run_id: i64,
        width: u32,
        height: u32,
        mut f: impl FnMut(&FrameMeta, &[DetectionRow]) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.require_run(run_id)?;
        let mut c = self.client();
        // The columns of `detection_from_row`, then whether there is one.
        let sql = "SELECT f.frame, f.t, d.class_id, d.score, d.x1, d.y1, d.x2, d.y2, d.track_id, d.keypoints, \
             d.seq IS NOT NULL FROM frames f LEFT JOIN detections d ON d.run_id = f.run_id AND d.frame = f.frame \
             WHERE f.run_id = $1 ORDER BY f.frame, d.seq";
        let mut rows = c
            .query_raw(sql, [&run_id as &(dyn ToSql + Sync)])
            .map_err(|e| self.err(e))?;
        let mut current: Option<FrameMeta> = None;
        let mut dets: Vec<DetectionRow> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let frame = r.get::<_, i64>(0) as u64;
            if current.is_some_and(|m| m.index != frame) {
                if let Err(x) = f(current.as_ref().expect("checked"), &dets) {
                    return Ok(Err(x));
                }
                dets.clear();
            }
            current = Some(FrameMeta {
                source: 0,
                index: frame,
                pts: r.get(1),
                width,
                height,
            });
            if r.get::<_, bool>(10) {
                dets.push(detection_from_row(&r));
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
