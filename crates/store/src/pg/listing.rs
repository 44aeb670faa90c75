//! The run listing, deleting runs, timelines, frame times and upload names
//! on PostgreSQL: the SQL of [`crate::listing`] in PostgreSQL's dialect.

use postgres::types::ToSql;

use super::PgStore;
use crate::listing::{
    list_sql, page, timeline_bins, Deleted, Param, RunListItem, RunListPage, RunListQuery,
    Timeline, TimelineQuery, POSTGRES,
};
use crate::{RunStatus, StoreError};

impl PgStore {
    /// One page of every run in the database, as [`crate::Store::list_runs`].
    pub fn list_runs(&self, q: &RunListQuery) -> Result<RunListPage, StoreError> {
        let (sql, params) = list_sql(q, &POSTGRES);
        let values: Vec<Box<dyn ToSql + Sync>> = params
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync> {
                match p {
                    Param::Text(s) => Box::new(s),
                    Param::Int(i) => Box::new(i),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
        let rows = self.client().query(&sql, &refs).map_err(|e| self.err(e))?;
        let items = rows
            .iter()
            .map(|r| {
                (
                    RunListItem {
                        id: r.get(0),
                        video_id: r.get(1),
                        video_path: r.get(2),
                        video_name: r.get(3),
                        content_hash: r.get(4),
                        model_path: r.get(5),
                        status: RunStatus::parse(r.get(6)),
                        job_id: r.get(7),
                        live: r.get(8),
                        frames: r.get::<_, i64>(9) as u64,
                        detections: r.get::<_, i64>(10) as u64,
                        tracks: r.get::<_, i64>(11) as u64,
                        fps: r.get(12),
                        width: r.get::<_, i64>(13) as u32,
                        height: r.get::<_, i64>(14) as u32,
                        video_fps: r.get(15),
                        duration: r.get(16),
                        started_at: r.get(17),
                        finished_at: r.get(18),
                        evals: r.get::<_, i64>(19) as u64,
                        pose: r.get(20),
                    },
                    r.get::<_, i64>(21),
                )
            })
            .collect();
        Ok(page(items, q))
    }

    /// Deletes a finished run and its rows, as [`crate::Store::delete_run`].
    pub fn delete_run(&self, id: i64) -> Result<Deleted, StoreError> {
        let mut c = self.client();
        let e = |e| self.err(e);
        let mut tx = c.transaction().map_err(e)?;
        let Some(row) = tx
            .query_opt("SELECT status FROM runs WHERE id = $1 FOR UPDATE", &[&id])
            .map_err(e)?
        else {
            return Ok(Deleted::NotFound);
        };
        let status = RunStatus::parse(row.get(0));
        if matches!(status, RunStatus::Running | RunStatus::Live) {
            return Ok(Deleted::Active(status));
        }
        tx.execute("UPDATE jobs SET run_id = NULL WHERE run_id = $1", &[&id])
            .map_err(e)?;
        tx.execute("DELETE FROM runs WHERE id = $1", &[&id])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Deleted::Done)
    }

    /// Detections per bin of frames, as [`crate::Store::timeline`].
    pub fn timeline(&self, run_id: i64, q: &TimelineQuery) -> Result<Timeline, StoreError> {
        self.require_run(run_id)?;
        let mut c = self.client();
        let last: Option<i64> = c
            .query_one(
                "SELECT greatest((SELECT max(frame) FROM frames WHERE run_id = $1), \
                 (SELECT max(frame) FROM detections WHERE run_id = $1))",
                &[&run_id],
            )
            .map_err(|e| self.err(e))?
            .get(0);
        let total = last.map_or(0, |l| l as u64 + 1);
        let n = q.bins.min(total);
        if n == 0 {
            return Ok(Timeline {
                frames: total,
                bins: Vec::new(),
            });
        }
        let class = q.class_id.map(i32::from);
        let track = q.track_id.map(i64::from);
        let rows = c
            .query(
                "SELECT frame, count(*) FROM detections WHERE run_id = $1 \
                 AND ($2::int8 IS NULL OR track_id = $2) AND ($3::int4 IS NULL OR class_id = $3) \
                 AND ($4::float4 IS NULL OR score >= $4) GROUP BY frame",
                &[&run_id, &track, &class, &q.min_score],
            )
            .map_err(|e| self.err(e))?;
        let counts: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
            .collect();
        Ok(Timeline {
            frames: total,
            bins: timeline_bins(total, n, &counts),
        })
    }

    /// Every analysed frame's index and time, in order.
    pub fn frame_times(&self, run_id: i64) -> Result<Vec<(u64, f64)>, StoreError> {
        self.require_run(run_id)?;
        let rows = self
            .client()
            .query(
                "SELECT frame, t FROM frames WHERE run_id = $1 ORDER BY frame",
                &[&run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
    }

    /// Records the name a stored upload was sent under (the first stays).
    pub fn save_upload_name(&self, path: &str, name: &str) -> Result<(), StoreError> {
        self.client()
            .execute(
                "INSERT INTO upload_names (path, name) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING",
                &[&path, &name],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    #[doc(hidden)]
    pub fn rows_of_run(&self, run_id: i64) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for t in crate::listing::RUN_TABLES {
            let c: i64 = self
                .client()
                .query_one(
                    &format!("SELECT count(*) FROM {t} WHERE run_id = $1"),
                    &[&run_id],
                )
                .map_err(|e| self.err(e))?
                .get(0);
            n += c as u64;
        }
        Ok(n)
    }

    /// Original names of stored uploads, by their stored path.
    pub fn upload_names(&self, paths: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .client()
            .query(
                "SELECT path, name FROM upload_names WHERE path = ANY($1)",
                &[&paths],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
