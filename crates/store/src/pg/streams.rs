//! Live streams on PostgreSQL, leased to worker processes as jobs are.
//!
//! A stream is a row the API stores; a worker process claims it with
//! `FOR UPDATE SKIP LOCKED` and holds it under a lease (`lease_until`, in
//! the database server's clock) that it renews about once a second while
//! it runs the stream, writing its counters (`report`) and latest
//! analysed picture (`still`) with each renewal. A stream has at most one
//! owner: a claim takes only a stream nobody holds or whose lease ran out,
//! and every write an owner makes is conditional on it still holding the
//! stream. A worker that dies (kill -9, machine lost) stops renewing; once
//! its lease runs out another worker claims the stream and starts a new
//! run of it (the dead worker's run is marked interrupted). A deleted row
//! is noticed by its owner at its next renewal, which stops the stream
//! and finalises its run.

use std::time::Duration;

use postgres::Row;
use serde_json::Value;

use super::PgStore;
use crate::{StoreError, StoredStream};

/// The database server's clock, Unix seconds.
const NOW: &str = "extract(epoch from clock_timestamp())::float8";

/// Version 6 of the PostgreSQL schema: the streams an API stores, with the
/// worker holding each (`owner`, `lease_until`), how often it was claimed,
/// the owner's counters and latest picture, and why a claim could not
/// start it (`error`, retried after `not_before`).
pub(crate) const STREAMS: &str = r#"
CREATE TABLE streams (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    owner       TEXT,
    lease_until DOUBLE PRECISION,
    claimed_at  DOUBLE PRECISION,
    claims      INTEGER NOT NULL DEFAULT 0,
    not_before  DOUBLE PRECISION NOT NULL DEFAULT 0,
    report      TEXT,
    still       BYTEA,
    error       TEXT
);
CREATE INDEX streams_by_owner ON streams (owner);
"#;

const COLUMNS: &str = "name, spec, created_at, owner, report, error, \
    (owner IS NOT NULL AND lease_until >= extract(epoch from clock_timestamp())::float8)";

fn stream_from_row(r: &Row) -> StoredStream {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let held: bool = r.get(6);
    StoredStream {
        name: r.get(0),
        spec: json(Some(r.get(1))).unwrap_or(Value::Null),
        created_at: r.get(2),
        // An expired lease is no owner: the stream waits for a claim.
        owner: if held { r.get(3) } else { None },
        report: if held { json(r.get(4)) } else { None },
        error: r.get(5),
    }
}

/// A stream a worker has just claimed.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamClaim {
    pub stream: StoredStream,
    /// The worker that held it before (its lease ran out or it let go).
    pub previous_owner: Option<String>,
    /// Times it was claimed, this one included.
    pub claims: u32,
}

impl PgStore {
    /// Stores a new stream; `false` when the name is taken.
    pub fn insert_stream(&self, s: &StoredStream) -> Result<bool, StoreError> {
        self.client()
            .execute(
                "INSERT INTO streams (name, spec, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &[&s.name, &s.spec.to_string(), &s.created_at],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// Removes a stream; `false` when there was none of that name. Its
    /// owner stops it at its next renewal.
    pub fn delete_stream(&self, name: &str) -> Result<bool, StoreError> {
        self.client()
            .execute("DELETE FROM streams WHERE name = $1", &[&name])
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// One stream by name.
    pub fn stream(&self, name: &str) -> Result<Option<StoredStream>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                &format!("SELECT {COLUMNS} FROM streams WHERE name = $1"),
                &[&name],
            )
            .map_err(|e| self.err(e))?
            .map(|r| stream_from_row(&r)))
    }

    /// Every stored stream, oldest first.
    pub fn streams(&self) -> Result<Vec<StoredStream>, StoreError> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {COLUMNS} FROM streams ORDER BY created_at, name"),
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(stream_from_row).collect())
    }

    /// Claims the oldest stream nobody holds (or whose lease ran out) for
    /// `worker`, for `lease`. `model`: only a stream of that model (a
    /// process's streams share one engine). A worker takes no more than
    /// its share (the streams over the live workers, those with a
    /// heartbeat within `alive`, rounded up) nor more than `max`, so
    /// streams spread over the workers. The run a dead owner left `live`
    /// is marked interrupted.
    pub fn claim_stream(
        &self,
        worker: &str,
        lease: Duration,
        model: Option<&str>,
        max: u32,
        alive: Duration,
    ) -> Result<Option<StreamClaim>, StoreError> {
        let mut c = self.client();
        let row = c
            .query_opt(
                &format!(
                    "WITH live AS ( \
                       SELECT greatest(count(*), 1)::float8 AS n FROM workers WHERE heartbeat_at >= {NOW} - $5), \
                     mine AS ( \
                       SELECT count(*) AS n FROM streams WHERE owner = $1 AND lease_until >= {NOW}), \
                     next AS ( \
                       SELECT name, owner AS prev FROM streams \
                       WHERE (owner IS NULL OR lease_until < {NOW}) AND not_before <= {NOW} \
                         AND ($3::text IS NULL OR spec::jsonb ->> 'model' = $3) \
                         AND (SELECT n FROM mine) < $4 \
                         AND (SELECT n FROM mine) < ceil((SELECT count(*) FROM streams) / (SELECT n FROM live)) \
                       ORDER BY created_at, name LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     UPDATE streams s SET owner = $1, lease_until = {NOW} + $2, claimed_at = {NOW}, \
                       claims = claims + 1, report = NULL, still = NULL, error = NULL \
                     FROM next WHERE s.name = next.name \
                     RETURNING s.name, s.spec, s.created_at, s.owner, s.report, s.error, true, next.prev, s.claims"
                ),
                &[
                    &worker,
                    &lease.as_secs_f64(),
                    &model,
                    &i64::from(max),
                    &alive.as_secs_f64(),
                ],
            )
            .map_err(|e| self.err(e))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let claim = StreamClaim {
            stream: stream_from_row(&r),
            previous_owner: r.get(7),
            claims: r.get::<_, i32>(8) as u32,
        };
        if claim.previous_owner.is_some() {
            self.db.reap_stale_runs(&mut c)?;
        }
        Ok(Some(claim))
    }

    /// Renews `worker`'s lease on every stream it holds; returns their
    /// names. A stream missing from the answer was deleted, or claimed by
    /// another worker after this one's lease ran out: stop it.
    pub fn renew_streams(&self, worker: &str, lease: Duration) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .query(
                &format!(
                    "UPDATE streams SET lease_until = {NOW} + $2 \
                     WHERE owner = $1 AND lease_until >= {NOW} RETURNING name"
                ),
                &[&worker, &lease.as_secs_f64()],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Records the owner's counters (JSON) and, when given, its latest
    /// picture (JPEG); `false` when `worker` no longer holds the stream.
    pub fn report_stream(
        &self,
        name: &str,
        worker: &str,
        report: &Value,
        still: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        self.client()
            .execute(
                &format!(
                    "UPDATE streams SET report = $3, still = coalesce($4, still) \
                     WHERE name = $1 AND owner = $2 AND lease_until >= {NOW}"
                ),
                &[&name, &worker, &report.to_string(), &still],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// `worker` lets go of a stream: with `error` (it could not start it),
    /// no worker claims it again for `retry_after`.
    pub fn release_stream(
        &self,
        name: &str,
        worker: &str,
        error: Option<&str>,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        self.client()
            .execute(
                &format!(
                    "UPDATE streams SET owner = NULL, lease_until = NULL, report = NULL, still = NULL, \
                     error = $3, not_before = CASE WHEN $3::text IS NULL THEN 0 ELSE {NOW} + $4 END \
                     WHERE name = $1 AND owner = $2"
                ),
                &[&name, &worker, &error, &retry_after.as_secs_f64()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The latest picture a stream's owner stored (JPEG), if it holds the
    /// stream.
    pub fn stream_still(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                &format!(
                    "SELECT still FROM streams WHERE name = $1 AND owner IS NOT NULL \
                     AND lease_until >= {NOW} AND still IS NOT NULL"
                ),
                &[&name],
            )
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0)))
    }
}
