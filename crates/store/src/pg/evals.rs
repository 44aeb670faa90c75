//! Stored evaluations and their matching on PostgreSQL, as
//! [`crate::evals`] does on SQLite: one transaction per evaluation, match
//! rows in by binary `COPY`, the per-frame summary by one array insert.

use peregrine_eval::{FrameCounts, MatchKind};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Row;
use serde_json::Value;

use super::PgStore;
use crate::evals::{
    error_bounds, frame_counts, match_bounds, ErrorFrame, ErrorPage, EvalRecord, MatchPage,
    MatchQuery, MatchRow, NewEval,
};
use crate::StoreError;

const EVAL_COLUMNS: &str = "e.id, e.run_id, e.kind, e.gt_path, \
     to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
     e.metrics, d.pr_curves, d.matches \
     FROM evals e LEFT JOIN eval_details d ON d.eval_id = e.id";

fn eval_from_row(r: &Row) -> EvalRecord {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    EvalRecord {
        id: r.get(0),
        run_id: r.get(1),
        kind: r.get(2),
        gt_path: r.get(3),
        created_at: r.get(4),
        metrics: json(r.get(5)).unwrap_or(Value::Null),
        pr_curves: json(r.get(6)),
        matches: r.get::<_, Option<i64>>(7).map(|n| n as u64),
    }
}

const MATCH_COLUMNS: &str =
    "frame, kind, gt_id, track_id, class_id, score, iou, x1, y1, x2, y2, gx1, gy1, gx2, gy2";

fn match_from_row(r: &Row) -> MatchRow {
    let gt: [Option<f32>; 4] = [r.get(11), r.get(12), r.get(13), r.get(14)];
    MatchRow {
        frame: r.get::<_, i64>(0) as u64,
        kind: MatchKind::parse(r.get(1)).unwrap_or(MatchKind::Fp),
        gt_id: r.get(2),
        track_id: r.get(3),
        class_id: r.get::<_, Option<i32>>(4).map(|c| c as u16),
        score: r.get(5),
        iou: r.get(6),
        bbox: [r.get(7), r.get(8), r.get(9), r.get(10)],
        gt_box: match gt {
            [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
            _ => None,
        },
    }
}

/// Column types of the binary `COPY` into `eval_matches`.
const MATCH_TYPES: [Type; 17] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
];

impl PgStore {
    /// Stores an evaluation with its matching and per-frame summary in one
    /// transaction; returns its id.
    pub fn save_eval_matched(&self, e: &NewEval) -> Result<i64, StoreError> {
        self.require_run(e.run_id)?;
        let mut c = self.client();
        let mut run = || -> Result<i64, postgres::Error> {
            let mut tx = c.transaction()?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO evals (run_id, kind, gt_path, metrics) VALUES ($1, $2, $3, $4) RETURNING id",
                    &[&e.run_id, &e.kind, &e.gt_path, &e.metrics.to_string()],
                )?
                .get(0);
            tx.execute(
                "INSERT INTO eval_details (eval_id, pr_curves, matches) VALUES ($1, $2, $3)",
                &[
                    &id,
                    &e.pr_curves.map(|v| v.to_string()),
                    &(e.matches.len() as i64),
                ],
            )?;
            if !e.matches.is_empty() {
                let sink = tx.copy_in(
                    "COPY eval_matches (eval_id, frame, seq, kind, gt_id, track_id, class_id, score, iou, \
                     x1, y1, x2, y2, gx1, gy1, gx2, gy2) FROM STDIN BINARY",
                )?;
                let mut w = BinaryCopyInWriter::new(sink, &MATCH_TYPES);
                for (seq, m) in e.matches.iter().enumerate() {
                    let g = m.gt_box;
                    let (g0, g1, g2, g3) = (
                        g.map(|b| b[0]),
                        g.map(|b| b[1]),
                        g.map(|b| b[2]),
                        g.map(|b| b[3]),
                    );
                    w.write(&[
                        &id,
                        &(m.frame as i64),
                        &(seq as i64),
                        &m.kind.as_str(),
                        &m.gt_id,
                        &m.track_id,
                        &m.class_id.map(i32::from),
                        &m.score,
                        &m.iou,
                        &m.bbox[0],
                        &m.bbox[1],
                        &m.bbox[2],
                        &m.bbox[3],
                        &g0,
                        &g1,
                        &g2,
                        &g3,
                    ])?;
                }
                w.finish()?;
                let counts = frame_counts(e.matches);
                let mut cols: [Vec<i64>; 6] = Default::default();
                for (f, k) in &counts {
                    for (col, v) in cols
                        .iter_mut()
                        .zip([*f, k.tp, k.fp, k.fn_, k.idsw, k.errors()])
                    {
                        col.push(v as i64);
                    }
                }
                tx.execute(
                    "INSERT INTO eval_frames (eval_id, frame, tp, fp, fn, idsw, errors) \
                     SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])",
                    &[&id, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]],
                )?;
            }
            tx.commit()?;
            Ok(id)
        };
        run().map_err(|x| self.err(x))
    }

    /// A run's evaluations, oldest first.
    pub fn evals(&self, run_id: i64) -> Result<Vec<EvalRecord>, StoreError> {
        self.require_run(run_id)?;
        let sql = format!("SELECT {EVAL_COLUMNS} WHERE e.run_id = $1 ORDER BY e.id");
        let rows = self
            .client()
            .query(&sql, &[&run_id])
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(eval_from_row).collect())
    }

    pub fn eval(&self, id: i64) -> Result<Option<EvalRecord>, StoreError> {
        let sql = format!("SELECT {EVAL_COLUMNS} WHERE e.id = $1");
        Ok(self
            .client()
            .query_opt(&sql, &[&id])
            .map_err(|e| self.err(e))?
            .map(|r| eval_from_row(&r)))
    }

    /// One keyset page of match rows in (frame, seq) order; `None` when
    /// there is no such evaluation.
    pub fn eval_matches(
        &self,
        eval_id: i64,
        q: &MatchQuery,
    ) -> Result<Option<MatchPage>, StoreError> {
        if self.eval(eval_id)?.is_none() {
            return Ok(None);
        }
        let (limit, af, ak, from, to) = match_bounds(q);
        let kind = q.kind.map(MatchKind::as_str);
        let sql = format!(
            "SELECT {MATCH_COLUMNS}, seq FROM eval_matches WHERE eval_id = $1 \
             AND frame >= $2 AND frame <= $3 AND (frame > $4 OR seq > $5) \
             AND ($6::text IS NULL OR kind = $6) ORDER BY frame, seq LIMIT $7"
        );
        let rows = self
            .client()
            .query(
                &sql,
                &[&eval_id, &from, &to, &af, &ak, &kind, &((limit + 1) as i64)],
            )
            .map_err(|e| self.err(e))?;
        let mut items = Vec::new();
        let mut last = None;
        for row in &rows {
            if items.len() == limit {
                return Ok(Some(MatchPage { items, next: last }));
            }
            let m = match_from_row(row);
            last = Some((m.frame, row.get::<_, i64>(15)));
            items.push(m);
        }
        Ok(Some(MatchPage { items, next: None }))
    }

    /// Frames with at least one error, worst first, ties by frame; `None`
    /// when there is no such evaluation.
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
        let rows = self
            .client()
            .query(
                "SELECT ef.frame, f.t, ef.tp, ef.fp, ef.fn, ef.idsw FROM eval_frames ef \
                 JOIN evals e ON e.id = ef.eval_id \
                 LEFT JOIN frames f ON f.run_id = e.run_id AND f.frame = ef.frame \
                 WHERE ef.eval_id = $1 AND ef.errors > 0 \
                 AND (ef.errors < $2 OR (ef.errors = $2 AND ef.frame > $3)) \
                 ORDER BY ef.errors DESC, ef.frame LIMIT $4",
                &[&eval_id, &ae, &af, &((limit + 1) as i64)],
            )
            .map_err(|e| self.err(e))?;
        let mut items: Vec<ErrorFrame> = Vec::new();
        for r in &rows {
            if items.len() == limit {
                let l = &items[limit - 1];
                let next = Some((l.counts.errors(), l.frame));
                return Ok(Some(ErrorPage { items, next }));
            }
            let n = |i| r.get::<_, i64>(i) as u64;
            items.push(ErrorFrame {
                frame: n(0),
                t: r.get(1),
                counts: FrameCounts {
                    tp: n(2),
                    fp: n(3),
                    fn_: n(4),
                    idsw: n(5),
                },
            });
        }
        Ok(Some(ErrorPage { items, next: None }))
    }
}
