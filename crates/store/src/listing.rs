//! The run listing (every run in the database, keyset-paged, filtered and
//! sorted), deleting a run, a run's detection timeline and its frame
//! times, and uploads' original names: one SQL text per query for both
//! engines, with each engine's few dialect differences filled in.

use rusqlite::params_from_iter;
use serde::Serialize;

use crate::{RunStatus, Store, StoreError};

/// The listing's orders. Detections sort by the run's recorded total (a
/// run still being written has recorded 0 so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunSort {
    StartedDesc,
    StartedAsc,
    DetectionsDesc,
    DetectionsAsc,
}

impl RunSort {
    /// `-started_at`, `started_at`, `-detections`, `detections`.
    pub fn parse(s: &str) -> Option<RunSort> {
        Some(match s {
            "-started_at" => RunSort::StartedDesc,
            "started_at" => RunSort::StartedAsc,
            "-detections" => RunSort::DetectionsDesc,
            "detections" => RunSort::DetectionsAsc,
            _ => return None,
        })
    }

    fn by_started(self) -> bool {
        matches!(self, RunSort::StartedDesc | RunSort::StartedAsc)
    }

    fn desc(self) -> bool {
        matches!(self, RunSort::StartedDesc | RunSort::DetectionsDesc)
    }
}

/// The position after the last run of a page: its sort key and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunCursor {
    Started(String, i64),
    Detections(i64, i64),
}

impl RunCursor {
    /// `s<started_at>_<id>` or `d<detections>_<id>`.
    pub fn encode(&self) -> String {
        match self {
            RunCursor::Started(s, id) => format!("s{s}_{id}"),
            RunCursor::Detections(d, id) => format!("d{d}_{id}"),
        }
    }

    /// A cursor [`RunCursor::encode`] wrote for `sort`; `None` for
    /// anything else (another order's cursor included).
    pub fn decode(c: &str, sort: RunSort) -> Option<RunCursor> {
        let (key, id) = c.get(1..)?.rsplit_once('_')?;
        let id: i64 = id.parse().ok().filter(|i| *i >= 0)?;
        match (c.as_bytes()[0], sort.by_started()) {
            (b's', true) => {
                let ok = !key.is_empty()
                    && key.len() <= 40
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b"-:.TZ".contains(&b));
                ok.then(|| RunCursor::Started(key.to_owned(), id))
            }
            (b'd', false) => Some(RunCursor::Detections(key.parse().ok()?, id)),
            _ => None,
        }
    }
}

/// One page's filters, order and position.
#[derive(Clone, Debug)]
pub struct RunListQuery {
    pub limit: usize,
    pub sort: RunSort,
    pub after: Option<RunCursor>,
    /// Case-insensitive substring of the display name ([`RunListItem::video_name`]).
    pub video: Option<String>,
    /// Case-insensitive substring of the model's file name.
    pub model: Option<String>,
    pub status: Option<RunStatus>,
    /// Started at or after / before, as stored: `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Folders display names are relative to (no trailing `/`), the first
    /// that holds the video winning.
    pub roots: Vec<String>,
    /// Only this run (a listing of one, for a run's own page).
    pub run: Option<i64>,
}

/// A run as the listing shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunListItem {
    pub id: i64,
    pub video_id: i64,
    /// As stored (absolute for service runs).
    pub video_path: String,
    /// An upload's original file name, else the path relative to the
    /// first root holding it, else the file name.
    pub video_name: String,
    pub content_hash: String,
    pub model_path: String,
    pub status: RunStatus,
    /// The newest job whose run this is.
    pub job_id: Option<i64>,
    /// A live stream's run.
    pub live: bool,
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    pub fps: Option<f64>,
    pub width: u32,
    pub height: u32,
    pub video_fps: f64,
    pub duration: f64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub evals: u64,
    /// Its detections carry keypoints (a pose model's run).
    pub pose: bool,
}

/// A page of runs and the cursor of the next one.
#[derive(Clone, Debug)]
pub struct RunListPage {
    pub items: Vec<RunListItem>,
    pub next: Option<RunCursor>,
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NotFound,
    /// Still being written (`running` or `live`): left alone.
    Active(RunStatus),
}

/// Detection counts per bin of frames.
#[derive(Clone, Debug, Default)]
pub struct TimelineQuery {
    pub bins: u64,
    pub class_id: Option<u16>,
    pub track_id: Option<u32>,
    pub min_score: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineBin {
    pub frame_from: u64,
    pub frame_to: u64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timeline {
    /// Frames the bins span: the last analysed frame's index + 1.
    pub frames: u64,
    pub bins: Vec<TimelineBin>,
}

/// Bin `b` of `n` over `total` frames holds frames `f` with
/// `f * n / total == b`: from `ceil(b * total / n)` to the next bin's
/// first frame - 1. `per_frame`: (frame, detections) pairs.
pub(crate) fn timeline_bins(total: u64, n: u64, per_frame: &[(u64, u64)]) -> Vec<TimelineBin> {
    if total == 0 || n == 0 {
        return Vec::new();
    }
    let first = |b: u64| ((b as u128 * total as u128).div_ceil(n as u128)) as u64;
    let mut bins: Vec<TimelineBin> = (0..n)
        .map(|b| TimelineBin {
            frame_from: first(b),
            frame_to: first(b + 1).saturating_sub(1),
            count: 0,
        })
        .collect();
    for &(f, c) in per_frame {
        let b = (f as u128 * n as u128 / total as u128) as usize;
        if let Some(bin) = bins.get_mut(b) {
            bin.count += c;
        }
    }
    bins
}

/// A query's parameter values, in order.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// Tables holding rows of a run.
pub(crate) const RUN_TABLES: &[&str] = &[
    "detections",
    "frames",
    "tracks",
    "evals",
    "count_intervals",
    "line_counts",
    "zone_counts",
    "zone_class_counts",
    "track_ground",
];

/// SQL of the listing for an engine: `ph(n)` writes parameter `n`
/// (1-based), `basename(x)` the file name of path `x`, `contains(a, b)`
/// whether `b` is in `a` (case-insensitive).
pub(crate) struct Dialect {
    pub ph: fn(usize) -> String,
    pub basename: fn(&str) -> String,
    pub contains: fn(&str, &str) -> String,
    pub truth: fn(&str) -> String,
}

pub(crate) fn list_sql(q: &RunListQuery, d: &Dialect) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = Vec::new();
    let p = |v: Param, params: &mut Vec<Param>| {
        params.push(v);
        (d.ph)(params.len())
    };
    // Display name: the upload's name, a root-relative path, a file name.
    let mut display = String::from("CASE WHEN u.name IS NOT NULL THEN u.name ");
    for root in &q.roots {
        let prefix = format!("{root}/");
        let n = prefix.chars().count();
        let ph = p(Param::Text(prefix), &mut params);
        display.push_str(&format!(
            "WHEN substr(v.path, 1, {n}) = {ph} THEN substr(v.path, {}) ",
            n + 1
        ));
    }
    display.push_str(&format!("ELSE {} END", (d.basename)("v.path")));
    let mut filters: Vec<String> = Vec::new();
    if let Some(s) = q.video.as_deref().filter(|s| !s.is_empty()) {
        let ph = p(Param::Text(s.to_owned()), &mut params);
        filters.push((d.contains)(&display, &ph));
    }
    if let Some(s) = q.model.as_deref().filter(|s| !s.is_empty()) {
        let ph = p(Param::Text(s.to_owned()), &mut params);
        filters.push((d.contains)(&(d.basename)("r.model_path"), &ph));
    }
    if let Some(id) = q.run {
        let ph = p(Param::Int(id), &mut params);
        filters.push(format!("r.id = {ph}"));
    }
    if let Some(s) = q.status {
        let ph = p(Param::Text(s.as_str().to_owned()), &mut params);
        filters.push(format!("r.status = {ph}"));
    }
    if let Some(s) = &q.since {
        let ph = p(Param::Text(s.clone()), &mut params);
        filters.push(format!("r.started_at >= {ph}"));
    }
    if let Some(s) = &q.until {
        let ph = p(Param::Text(s.clone()), &mut params);
        filters.push(format!("r.started_at < {ph}"));
    }
    let key = if q.sort.by_started() {
        "r.started_at"
    } else {
        "r.detections"
    };
    let (cmp, dir) = if q.sort.desc() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match &q.after {
        Some(RunCursor::Started(s, id)) if q.sort.by_started() => {
            let a = p(Param::Text(s.clone()), &mut params);
            let b = p(Param::Int(*id), &mut params);
            filters.push(format!("({key}, r.id) {cmp} ({a}, {b})"));
        }
        Some(RunCursor::Detections(n, id)) if !q.sort.by_started() => {
            let a = p(Param::Int(*n), &mut params);
            let b = p(Param::Int(*id), &mut params);
            filters.push(format!("({key}, r.id) {cmp} ({a}, {b})"));
        }
        _ => {}
    }
    let limit = p(Param::Int(q.limit as i64 + 1), &mut params);
    let where_ = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let active = "r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0";
    let sql = format!(
        "SELECT r.id, r.video_id, v.path, {display}, v.content_hash, r.model_path, r.status, \
           (SELECT max(j.id) FROM jobs j WHERE j.run_id = r.id), \
           (r.status = 'live' OR substr(r.cache_key, 1, 5) = 'live:'), \
           CASE WHEN {active} THEN (SELECT count(DISTINCT d.frame) FROM detections d WHERE d.run_id = r.id) ELSE r.frames END, \
           CASE WHEN {active} THEN (SELECT count(*) FROM detections d WHERE d.run_id = r.id) ELSE r.detections END, \
           CASE WHEN {active} THEN (SELECT count(DISTINCT d.track_id) FROM detections d WHERE d.run_id = r.id) ELSE r.tracks END, \
           r.fps, v.width, v.height, v.fps, v.duration, r.started_at, r.finished_at, \
           (SELECT count(*) FROM evals e WHERE e.run_id = r.id), \
           coalesce((SELECT {} FROM detections d WHERE d.run_id = r.id LIMIT 1), {}), \
           r.detections \
         FROM runs r JOIN videos v ON v.id = r.video_id LEFT JOIN upload_names u ON u.path = v.path \
         {where_} ORDER BY {key} {dir}, r.id {dir} LIMIT {limit}",
        (d.truth)("d.keypoints IS NOT NULL"),
        (d.truth)("1 = 0"),
    );
    (sql, params)
}

/// The page from up to `limit + 1` rows (`sort_key`: each row's recorded
/// detections).
pub(crate) fn page(mut items: Vec<(RunListItem, i64)>, q: &RunListQuery) -> RunListPage {
    let next = if items.len() > q.limit {
        items.truncate(q.limit);
        items.last().map(|(r, det)| {
            if q.sort.by_started() {
                RunCursor::Started(r.started_at.clone(), r.id)
            } else {
                RunCursor::Detections(*det, r.id)
            }
        })
    } else {
        None
    };
    RunListPage {
        items: items.into_iter().map(|(r, _)| r).collect(),
        next,
    }
}

const SQLITE: Dialect = Dialect {
    ph: |n| format!("?{n}"),
    basename: |x| format!("substr({x}, length(rtrim({x}, replace({x}, '/', ''))) + 1)"),
    contains: |a, b| format!("instr(lower({a}), lower({b})) > 0"),
    truth: |x| format!("({x})"),
};

pub(crate) const POSTGRES: Dialect = Dialect {
    ph: |n| format!("${n}"),
    basename: |x| format!("regexp_replace({x}, '^.*/', '')"),
    contains: |a, b| format!("strpos(lower({a}), lower({b}::text)) > 0"),
    truth: |x| format!("({x})"),
};

/// The file name an upload was sent under, cleaned for display: its last
/// path component, control characters dropped, at most 255 characters.
pub fn clean_upload_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim().to_owned();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

impl Store {
    /// One page of every run in the database (see [`RunListQuery`]).
    pub fn list_runs(&self, q: &RunListQuery) -> Result<RunListPage, StoreError> {
        let (sql, params) = list_sql(q, &SQLITE);
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                Param::Text(s) => rusqlite::types::Value::Text(s),
                Param::Int(i) => rusqlite::types::Value::Integer(i),
            })
            .collect();
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.db.err(e))?;
        let rows = stmt
            .query_map(params_from_iter(values), |r| {
                Ok((
                    RunListItem {
                        id: r.get(0)?,
                        video_id: r.get(1)?,
                        video_path: r.get(2)?,
                        video_name: r.get(3)?,
                        content_hash: r.get(4)?,
                        model_path: r.get(5)?,
                        status: RunStatus::parse(&r.get::<_, String>(6)?),
                        job_id: r.get(7)?,
                        live: r.get::<_, i64>(8)? != 0,
                        frames: r.get::<_, i64>(9)? as u64,
                        detections: r.get::<_, i64>(10)? as u64,
                        tracks: r.get::<_, i64>(11)? as u64,
                        fps: r.get(12)?,
                        width: r.get(13)?,
                        height: r.get(14)?,
                        video_fps: r.get(15)?,
                        duration: r.get(16)?,
                        started_at: r.get(17)?,
                        finished_at: r.get(18)?,
                        evals: r.get::<_, i64>(19)? as u64,
                        pose: r.get::<_, i64>(20)? != 0,
                    },
                    r.get::<_, i64>(21)?,
                ))
            })
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(page(rows, q))
    }

    /// Deletes a finished run and every row that belongs to it (its
    /// detections, frames, tracks, evaluations and counts go by cascade);
    /// jobs that produced it keep their record without the link.
    pub fn delete_run(&mut self, id: i64) -> Result<Deleted, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.db.err(e))?;
        let status: Option<String> = {
            use rusqlite::OptionalExtension;
            tx.query_row("SELECT status FROM runs WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(|e| self.db.err(e))?
        };
        let Some(status) = status.map(|s| RunStatus::parse(&s)) else {
            return Ok(Deleted::NotFound);
        };
        if matches!(status, RunStatus::Running | RunStatus::Live) {
            return Ok(Deleted::Active(status));
        }
        tx.execute("UPDATE jobs SET run_id = NULL WHERE run_id = ?1", [id])
            .map_err(|e| self.db.err(e))?;
        tx.execute("DELETE FROM runs WHERE id = ?1", [id])
            .map_err(|e| self.db.err(e))?;
        tx.commit().map_err(|e| self.db.err(e))?;
        Ok(Deleted::Done)
    }

    /// Detections per bin of frames: one range scan of the run's
    /// `(run_id, frame)` index (or `(run_id, track_id, frame)` for one
    /// track), grouped by frame in index order (no sort), binned here.
    pub fn timeline(&self, run_id: i64, q: &TimelineQuery) -> Result<Timeline, StoreError> {
        self.require_run(run_id)?;
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(m) FROM (SELECT max(frame) AS m FROM frames WHERE run_id = ?1 \
                 UNION ALL SELECT max(frame) FROM detections WHERE run_id = ?1)",
                [run_id],
                |r| r.get(0),
            )
            .map_err(|e| self.db.err(e))?;
        let total = last.map_or(0, |l| l as u64 + 1);
        let n = q.bins.min(total);
        if n == 0 {
            return Ok(Timeline {
                frames: total,
                bins: Vec::new(),
            });
        }
        // Two texts, so that one track's query plans on the track index.
        let track = if q.track_id.is_some() {
            "AND track_id = ?2"
        } else {
            "AND ?2 IS NULL"
        };
        let sql = format!(
            "SELECT frame, count(*) FROM detections WHERE run_id = ?1 {track} \
             AND (?3 IS NULL OR class_id = ?3) AND (?4 IS NULL OR score >= ?4) GROUP BY frame"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db.err(e))?;
        let counts = stmt
            .query_map(
                rusqlite::params![run_id, q.track_id, q.class_id, q.min_score],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(Timeline {
            frames: total,
            bins: timeline_bins(total, n, &counts),
        })
    }

    /// Every analysed frame's index and time, in order.
    pub fn frame_times(&self, run_id: i64) -> Result<Vec<(u64, f64)>, StoreError> {
        self.require_run(run_id)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT frame, t FROM frames WHERE run_id = ?1 ORDER BY frame")
            .map_err(|e| self.db.err(e))?;
        let rows = stmt
            .query_map([run_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(rows)
    }

    /// Records the name a stored upload was sent under (the first name
    /// stays).
    pub fn save_upload_name(&self, path: &str, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO upload_names (path, name) VALUES (?1, ?2) ON CONFLICT (path) DO NOTHING",
                [path, name],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(())
    }

    #[doc(hidden)]
    pub fn rows_of_run(&self, run_id: i64) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for t in RUN_TABLES {
            let c: i64 = self
                .conn
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE run_id = ?1"),
                    [run_id],
                    |r| r.get(0),
                )
                .map_err(|e| self.db.err(e))?;
            n += c as u64;
        }
        Ok(n)
    }

    /// Original names of stored uploads, by their stored path.
    pub fn upload_names(&self, paths: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, name FROM upload_names WHERE path = ?1")
            .map_err(|e| self.db.err(e))?;
        let mut out = Vec::new();
        for p in paths {
            let mut rows = stmt.query([p]).map_err(|e| self.db.err(e))?;
            if let Some(r) = rows.next().map_err(|e| self.db.err(e))? {
                out.push((
                    r.get(0).map_err(|e| self.db.err(e))?,
                    r.get(1).map_err(|e| self.db.err(e))?,
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_orders() {
        let c = RunCursor::Started("2026-12-04T21:25:25.123Z".into(), 7);
        assert_eq!(
            RunCursor::decode(&c.encode(), RunSort::StartedDesc),
            Some(c.clone())
        );
        assert_eq!(
            RunCursor::decode(&c.encode(), RunSort::DetectionsDesc),
            None
        );
        let d = RunCursor::Detections(100, 3);
        assert_eq!(
            RunCursor::decode(&d.encode(), RunSort::DetectionsAsc),
            Some(d)
        );
        for bad in [
            "",
            "x",
            "s_1",
            "sabc'--_1",
            "d1_-1",
            "d_1",
            "dx_1",
            "s2026_",
            "é",
        ] {
            assert_eq!(RunCursor::decode(bad, RunSort::StartedAsc), None, "{bad}");
            assert_eq!(
                RunCursor::decode(bad, RunSort::DetectionsAsc),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn bins_cover_every_frame_once() {
        for (total, n) in [(10, 3), (100, 100), (7, 7), (1000, 7), (5, 1)] {
            let per_frame: Vec<(u64, u64)> = (0..total).map(|f| (f, 1)).collect();
            let bins = timeline_bins(total, n, &per_frame);
            assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), total);
            for b in &bins {
                assert_eq!(b.count, b.frame_to - b.frame_from + 1);
            }
            assert_eq!(bins.len() as u64, n);
            assert_eq!(bins[0].frame_from, 0);
            assert_eq!(bins.last().unwrap().frame_to, total - 1);
            for w in bins.windows(2) {
                assert_eq!(w[0].frame_to + 1, w[1].frame_from);
            }
            // Each frame's bin by the SQL's formula holds it.
            for f in 0..total {
                let b = &bins[(f * n / total) as usize];
                assert!(b.frame_from <= f && f <= b.frame_to, "{total} {n} {f}");
            }
        }
    }

    #[test]
    fn upload_names_keep_the_file_name_only() {
        assert_eq!(clean_upload_name("clip.mp4").as_deref(), Some("clip.mp4"));
        assert_eq!(
            clean_upload_name("C:\\Users\\me\\clip 1.mp4").as_deref(),
            Some("clip 1.mp4")
        );
        assert_eq!(
            clean_upload_name("/etc/a\nb.mp4").as_deref(),
            Some("ab.mp4")
        );
        assert_eq!(clean_upload_name("dir/"), None);
        assert_eq!(clean_upload_name(".."), None);
    }
}
