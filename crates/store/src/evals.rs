//! Stored evaluations with their per-frame matching (SQLite; the
//! PostgreSQL side is `pg::evals`).
//!
//! A key design decision here is that an evaluation, its match rows and
//! its per-frame summary are written in one transaction, so a stored
//! evaluation always has all of its matching or none (older evaluations,
//! stored before matching existed, have none: `matches` is `None`). The
//! per-frame summary (`eval_frames`, indexed by `(eval_id, errors DESC,
//! frame)`) makes "frames worst first" one index range per page, keyset
//! paged like detections.

use std::collections::BTreeMap;

use peregrine_eval::{FrameCounts, MatchKind};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::{Results, Store, StoreError};

/// One stored match event: the drawn box (`bbox`: the prediction, or the
/// ground truth of a miss) in the run's pixels, `x1, y1, x2, y2`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchRow {
    /// The run's frame index (0-based, as detections).
    pub frame: u64,
    pub kind: MatchKind,
    pub gt_id: Option<i64>,
    pub track_id: Option<i64>,
    pub class_id: Option<u16>,
    pub score: Option<f32>,
    pub iou: Option<f32>,
    pub bbox: [f32; 4],
    /// The ground-truth box of a match (`tp`, `idsw`), or of a miss.
    pub gt_box: Option<[f32; 4]>,
}

/// An evaluation to store.
#[derive(Clone, Copy, Debug)]
pub struct NewEval<'a> {
    pub run_id: i64,
    pub kind: &'a str,
    pub gt_path: &'a str,
    pub metrics: &'a Value,
    pub pr_curves: Option<&'a Value>,
    pub matches: &'a [MatchRow],
}

/// A stored evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRecord {
    pub id: i64,
    pub run_id: i64,
    pub kind: String,
    pub gt_path: String,
    pub created_at: String,
    pub metrics: Value,
    pub pr_curves: Option<Value>,
    /// Match rows stored; `None` for an evaluation stored without them.
    pub matches: Option<u64>,
}

/// Filters and position of one page of match rows.
#[derive(Clone, Debug, Default)]
pub struct MatchQuery {
    pub frame_from: Option<u64>,
    pub frame_to: Option<u64>,
    pub kind: Option<MatchKind>,
    pub limit: usize,
    /// (frame, key) of the previous page's last row.
    pub after: Option<(u64, i64)>,
}

#[derive(Clone, Debug)]
pub struct MatchPage {
    pub items: Vec<MatchRow>,
    pub next: Option<(u64, i64)>,
}

/// A frame's events summed, with its time when the run recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorFrame {
    pub frame: u64,
    pub t: Option<f64>,
    pub counts: FrameCounts,
}

#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub items: Vec<ErrorFrame>,
    /// (errors, frame) of the last row.
    pub next: Option<(u64, u64)>,
}

/// Per-frame sums of `matches`, by frame.
pub(crate) fn frame_counts(matches: &[MatchRow]) -> BTreeMap<u64, FrameCounts> {
    let mut m: BTreeMap<u64, FrameCounts> = BTreeMap::new();
    for r in matches {
        m.entry(r.frame).or_default().add(r.kind);
    }
    m
}

/// SQL bounds of a match page: (limit, after_frame, after_key, from, to).
pub(crate) fn match_bounds(q: &MatchQuery) -> (usize, i64, i64, i64, i64) {
    let (af, ak) = q.after.map(|(f, k)| (f as i64, k)).unwrap_or((-1, -1));
    let from = (q.frame_from.unwrap_or(0).min(i64::MAX as u64) as i64).max(af);
    let to = q
        .frame_to
        .map(|f| f.min(i64::MAX as u64) as i64)
        .unwrap_or(i64::MAX);
    (q.limit.clamp(1, 10_000), af, ak, from, to)
}

/// SQL bounds of an errors page: (limit, errors, frame) of the cursor.
pub(crate) fn error_bounds(limit: usize, after: Option<(u64, u64)>) -> (usize, i64, i64) {
    let (e, f) = after
        .map(|(e, f)| (e.min(i64::MAX as u64) as i64, f.min(i64::MAX as u64) as i64))
        .unwrap_or((i64::MAX, -1));
    (limit.clamp(1, 10_000), e, f)
}

fn kind_of(s: &str) -> MatchKind {
    MatchKind::parse(s).unwrap_or(MatchKind::Fp)
}

const EVAL_COLUMNS: &str =
    "e.id, e.run_id, e.kind, e.gt_path, e.created_at, e.metrics, d.pr_curves, d.matches \
     FROM evals e LEFT JOIN eval_details d ON d.eval_id = e.id";

fn eval_from_row(r: &rusqlite::Row) -> rusqlite::Result<EvalRecord> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(EvalRecord {
        id: r.get(0)?,
        run_id: r.get(1)?,
        kind: r.get(2)?,
        gt_path: r.get(3)?,
        created_at: r.get(4)?,
        metrics: json(r.get(5)?).unwrap_or(Value::Null),
        pr_curves: json(r.get(6)?),
        matches: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
    })
}

const MATCH_COLUMNS: &str =
    "frame, kind, gt_id, track_id, class_id, score, iou, x1, y1, x2, y2, gx1, gy1, gx2, gy2";

fn match_from_row(r: &rusqlite::Row) -> rusqlite::Result<MatchRow> {
    let gt: [Option<f32>; 4] = [r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?];
    Ok(MatchRow {
        frame: r.get::<_, i64>(0)? as u64,
        kind: kind_of(&r.get::<_, String>(1)?),
        gt_id: r.get(2)?,
        track_id: r.get(3)?,
        class_id: r.get(4)?,
        score: r.get(5)?,
        iou: r.get(6)?,
        bbox: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
        gt_box: match gt {
            [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
            _ => None,
        },
    })
}

impl Store {
    /// Stores an evaluation with its matching and per-frame summary in one
    /// transaction; returns its id.
    pub fn save_eval_matched(&mut self, e: &NewEval) -> Result<i64, StoreError> {
        self.require_run(e.run_id)?;
        let err = |x| self.db.err(x);
        let tx = self.conn.transaction().map_err(err)?;
        let id: i64 = tx
            .query_row(
                "INSERT INTO evals (run_id, kind, gt_path, metrics) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![e.run_id, e.kind, e.gt_path, e.metrics.to_string()],
                |r| r.get(0),
            )
            .map_err(err)?;
        tx.execute(
            "INSERT INTO eval_details (eval_id, pr_curves, matches) VALUES (?1, ?2, ?3)",
            params![
                id,
                e.pr_curves.map(|v| v.to_string()),
                e.matches.len() as i64
            ],
        )
        .map_err(err)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO eval_matches (eval_id, frame, kind, gt_id, track_id, class_id, score, iou, \
                     x1, y1, x2, y2, gx1, gy1, gx2, gy2) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(err)?;
            for m in e.matches {
                let g = m.gt_box;
                ins.execute(params![
                    id,
                    m.frame as i64,
                    m.kind.as_str(),
                    m.gt_id,
                    m.track_id,
                    m.class_id,
                    m.score,
                    m.iou,
                    m.bbox[0],
                    m.bbox[1],
                    m.bbox[2],
                    m.bbox[3],
                    g.map(|b| b[0]),
                    g.map(|b| b[1]),
                    g.map(|b| b[2]),
                    g.map(|b| b[3])
                ])
                .map_err(err)?;
            }
            let mut fr = tx
                .prepare(
                    "INSERT INTO eval_frames (eval_id, frame, tp, fp, fn, idsw, errors) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for (frame, c) in frame_counts(e.matches) {
                fr.execute(params![
                    id,
                    frame as i64,
                    c.tp as i64,
                    c.fp as i64,
                    c.fn_ as i64,
                    c.idsw as i64,
                    c.errors() as i64
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// A run's evaluations, oldest first.
    pub fn evals(&self, run_id: i64) -> Result<Vec<EvalRecord>, StoreError> {
        self.require_run(run_id)?;
        let sql = format!("SELECT {EVAL_COLUMNS} WHERE e.run_id = ?1 ORDER BY e.id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.db.err(e))?;
        let rows = stmt
            .query_map([run_id], eval_from_row)
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(rows)
    }

    pub fn eval(&self, id: i64) -> Result<Option<EvalRecord>, StoreError> {
        let sql = format!("SELECT {EVAL_COLUMNS} WHERE e.id = ?1");
        self.conn
            .query_row(&sql, [id], eval_from_row)
            .optional()
            .map_err(|e| self.db.err(e))
    }

    /// One keyset page of an evaluation's match rows in (frame, insertion)
    /// order; `None` when there is no such evaluation.
    pub fn eval_matches(
        &self,
        eval_id: i64,
        q: &MatchQuery,
    ) -> Result<Option<MatchPage>, StoreError> {
        if self.eval(eval_id)?.is_none() {
            return Ok(None);
        }
        let (limit, af, ak, from, to) = match_bounds(q);
        let sql = format!(
            "SELECT {MATCH_COLUMNS}, rowid FROM eval_matches WHERE eval_id = ?1 \
             AND frame >= ?2 AND frame <= ?3 AND (frame > ?4 OR rowid > ?5) \
             AND (?6 IS NULL OR kind = ?6) ORDER BY frame, rowid LIMIT ?7"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db.err(e))?;
        let mut rows = stmt
            .query(params![
                eval_id,
                from,
                to,
                af,
                ak,
                q.kind.map(MatchKind::as_str),
                (limit + 1) as i64
            ])
            .map_err(|e| self.db.err(e))?;
        let mut items = Vec::new();
        let mut last = None;
        while let Some(row) = rows.next().map_err(|e| self.db.err(e))? {
            if items.len() == limit {
                return Ok(Some(MatchPage { items, next: last }));
            }
            let m = match_from_row(row).map_err(|e| self.db.err(e))?;
            last = Some((m.frame, row.get::<_, i64>(15).map_err(|e| self.db.err(e))?));
            items.push(m);
        }
        Ok(Some(MatchPage { items, next: None }))
    }

    /// Frames with at least one error (fp + fn + idsw), worst first, ties
    /// by frame; `None` when there is no such evaluation.
    pub fn eval_errors(
        &self,
        eval_id: i64,
        limit: usize,
        after: Option<(u64, u64)>,
    ) -> Result<Option<ErrorPage>, StoreError> {
        if self.eval(eval_id)?.is_none() {
            return Ok(None);
        }
        let (limit, ae, af) = error_bounds(limit, after);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ef.frame, f.t, ef.tp, ef.fp, ef.fn, ef.idsw FROM eval_frames ef \
                 JOIN evals e ON e.id = ef.eval_id \
                 LEFT JOIN frames f ON f.run_id = e.run_id AND f.frame = ef.frame \
                 WHERE ef.eval_id = ?1 AND ef.errors > 0 \
                 AND (ef.errors < ?2 OR (ef.errors = ?2 AND ef.frame > ?3)) \
                 ORDER BY ef.errors DESC, ef.frame LIMIT ?4",
            )
            .map_err(|e| self.db.err(e))?;
        let mut rows = stmt
            .query(params![eval_id, ae, af, (limit + 1) as i64])
            .map_err(|e| self.db.err(e))?;
        let mut items: Vec<ErrorFrame> = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.db.err(e))? {
            if items.len() == limit {
                let l = &items[limit - 1];
                let next = Some((l.counts.errors(), l.frame));
                return Ok(Some(ErrorPage { items, next }));
            }
            let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
            let row = (|| -> rusqlite::Result<ErrorFrame> {
                Ok(ErrorFrame {
                    frame: n(0)?,
                    t: r.get(1)?,
                    counts: FrameCounts {
                        tp: n(2)?,
                        fp: n(3)?,
                        fn_: n(4)?,
                        idsw: n(5)?,
                    },
                })
            })()
            .map_err(|e| self.db.err(e))?;
            items.push(row);
        }
        Ok(Some(ErrorPage { items, next: None }))
    }
}

/// Calls the same method on either engine.
macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Results::Sqlite($s) => $e,
            Results::Postgres($s) => $e,
        }
    };
}

impl Results {
    pub fn save_eval_matched(&mut self, e: &NewEval) -> Result<i64, StoreError> {
        both!(self, s => s.save_eval_matched(e))
    }

    pub fn evals(&self, run_id: i64) -> Result<Vec<EvalRecord>, StoreError> {
        both!(self, s => s.evals(run_id))
    }

    pub fn eval(&self, id: i64) -> Result<Option<EvalRecord>, StoreError> {
        both!(self, s => s.eval(id))
    }

    pub fn eval_matches(
        &self,
        eval_id: i64,
        q: &MatchQuery,
    ) -> Result<Option<MatchPage>, StoreError> {
        both!(self, s => s.eval_matches(eval_id, q))
    }

    pub fn eval_errors(
        &self,
        eval_id: i64,
        limit: usize,
        after: Option<(u64, u64)>,
    ) -> Result<Option<ErrorPage>, StoreError> {
        both!(self, s => s.eval_errors(eval_id, limit, after))
    }
}
