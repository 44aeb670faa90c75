//! The pipeline's [`RunStore`] and [`RunSink`] on PostgreSQL.

use std::sync::Mutex;
use std::time::Duration;

use peregrine_core::{
    CachedRun, FrameDetections, GroundTrack, IntervalCounts, RunOutcome, RunSink, RunStart,
    RunStatus, RunStore, SinkError, SinkErrorKind, SpatialSpec, TrackSummary,
};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;

use super::{keypoints_blob, PgDb, PgStore, RUN_LOCK};
use crate::sink::spatial_spec;
use crate::{StoreError, TrackRow};

/// Runs recorded in a PostgreSQL database. Each run writes through a
/// connection of its own, held for the run's life (it holds the run's
/// advisory lock); cache look-ups share one spare connection.
pub struct PgRunStore {
    db: PgDb,
    spare: Mutex<Option<Client>>,
}

impl PgRunStore {
    /// Connects and migrates once, so a bad URL or an unreachable server
    /// fails before any work.
    pub fn open(url: &str, timeout: Duration) -> Result<PgRunStore, StoreError> {
        let store = PgStore::open(url, timeout)?;
        Ok(PgRunStore {
            db: store.db,
            spare: Mutex::new(Some(
                store.conn.into_inner().unwrap_or_else(|p| p.into_inner()),
            )),
        })
    }

    /// Runs `f` on the spare connection (a new one when it is taken or
    /// broken).
    fn with_spare<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let taken = self.spare.lock().ok().and_then(|mut s| s.take());
        let mut c = match taken {
            Some(c) if !c.is_closed() => c,
            _ => self.db.connect()?,
        };
        let out = f(&mut c).map_err(|e| self.db.err(e));
        if let Ok(mut s) = self.spare.lock() {
            *s = Some(c);
        }
        out
    }
}

fn sink_err(e: StoreError) -> SinkError {
    SinkError::from(e)
}

impl RunStore for PgRunStore {
    fn cached(&self, cache_key: &str) -> Result<Option<CachedRun>, SinkError> {
        let row = self
            .with_spare(|c| {
                c.query_opt(
                    "SELECT id, status, error, frames, detections, tracks, fps, timings, decode \
                     FROM runs WHERE cache_key = $1 AND status IN ('complete', 'partial') \
                     ORDER BY id DESC LIMIT 1",
                    &[&cache_key],
                )
            })
            .map_err(sink_err)?;
        Ok(row.map(|r| CachedRun {
            id: r.get(0),
            status: RunStatus::parse(r.get(1)),
            error: r.get(2),
            frames: r.get::<_, i64>(3) as u64,
            detections: r.get::<_, i64>(4) as u64,
            tracks: r.get::<_, i64>(5) as u64,
            fps: r.get(6),
            timings: super::json(r.get(7)),
            decode: super::json(r.get(8)),
        }))
    }

    fn begin(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        self.begin_as(start, RunStatus::Running)
    }

    fn begin_live(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        self.begin_as(start, RunStatus::Live)
    }
}

impl PgRunStore {
    /// Records the video and the run, and takes the run's advisory lock in
    /// the same transaction: no reaper ever sees the run without its
    /// writer.
    fn begin_as(&self, start: &RunStart, status: RunStatus) -> Result<Box<dyn RunSink>, SinkError> {
        let mut c = self.db.connect().map_err(sink_err)?;
        let e = |e| sink_err(self.db.err(e));
        // The durability of SQLite's WAL with `synchronous = NORMAL`: a
        // commit returns before its WAL record reaches the disk, so a
        // server crash may lose the last batches (never corrupt them). A
        // run is trusted only once `finish` marked it complete, and that
        // last update waits for the disk.
        c.batch_execute("SET synchronous_commit = off").map_err(e)?;
        let v = &start.video;
        let mut tx = c.transaction().map_err(e)?;
        let video_id: i64 = tx
            .query_one(
                "INSERT INTO videos (path, content_hash, size, duration, fps, width, height, codec, frames_expected) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (content_hash, path) DO UPDATE SET duration = excluded.duration \
                 RETURNING id",
                &[
                    &v.path,
                    &v.content_hash,
                    &(v.size as i64),
                    &v.duration,
                    &v.fps,
                    &i64::from(v.width),
                    &i64::from(v.height),
                    &v.codec,
                    &(v.frames_expected as i64),
                ],
            )
            .map_err(e)?
            .get(0);
        let host = std::env::var("HOSTNAME").ok();
        let run_id: i64 = tx
            .query_one(
                "INSERT INTO runs (video_id, cache_key, model_path, model_hash, params, versions, status, host, pid) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &video_id,
                    &start.cache_key,
                    &start.model_path,
                    &start.model_hash,
                    &start.params.to_string(),
                    &start.versions.to_string(),
                    &status.as_str(),
                    &host,
                    &i64::from(std::process::id()),
                ],
            )
            .map_err(e)?
            .get(0);
        tx.execute(
            "SELECT pg_advisory_lock($1::bigint | $2::bigint)",
            &[&RUN_LOCK, &run_id],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Box::new(PgRunSink {
            db: self.db.clone(),
            conn: c,
            run_id,
            seq: 0,
            spatial: spatial_spec(&start.params),
        }))
    }
}

/// One run's results, each call one transaction.
struct PgRunSink {
    db: PgDb,
    conn: Client,
    run_id: i64,
    /// Detections written so far: the next one's `seq`.
    seq: i64,
    spatial: Option<SpatialSpec>,
}

/// The column types of a binary `COPY` into `detections`.
const DETECTION_TYPES: [Type; 12] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::INT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::FLOAT4,
    Type::INT8,
    Type::BYTEA,
];

impl PgRunSink {
    fn err(&self, e: postgres::Error) -> SinkError {
        sink_err(self.db.err(e))
    }

    /// The frames (every analysed one, with or without detections) and
    /// their detections in one transaction: frames as one array insert,
    /// detections as one binary `COPY`.
    fn write_frames(&mut self, frames: &[FrameDetections]) -> Result<i64, postgres::Error> {
        let run_id = self.run_id;
        let mut seq = self.seq;
        let mut tx = self.conn.transaction()?;
        let (idx, ts): (Vec<i64>, Vec<f64>) = frames
            .iter()
            .map(|f| (f.meta.index as i64, f.meta.pts))
            .unzip();
        tx.execute(
            "INSERT INTO frames (run_id, frame, t) SELECT $1, * FROM unnest($2::int8[], $3::float8[]) \
             ON CONFLICT DO NOTHING",
            &[&run_id, &idx, &ts],
        )?;
        if frames.iter().any(|f| !f.detections.is_empty()) {
            let sink = tx.copy_in(
                "COPY detections (run_id, frame, seq, t, class_id, score, x1, y1, x2, y2, track_id, keypoints) \
                 FROM STDIN BINARY",
            )?;
            let mut w = BinaryCopyInWriter::new(sink, &DETECTION_TYPES);
            for f in frames {
                let frame = f.meta.index as i64;
                for d in &f.detections {
                    let track = d.track_id.map(i64::from);
                    let kp = keypoints_blob(&d.keypoints);
                    w.write(&[
                        &run_id,
                        &frame,
                        &seq,
                        &f.meta.pts,
                        &i32::from(d.class_id),
                        &d.score,
                        &d.bbox.x1,
                        &d.bbox.y1,
                        &d.bbox.x2,
                        &d.bbox.y2,
                        &track,
                        &kp,
                    ])?;
                    seq += 1;
                }
            }
            w.finish()?;
        }
        tx.commit()?;
        Ok(seq)
    }

    fn write_tracks(&mut self, tracks: &[TrackSummary]) -> Result<(), postgres::Error> {
        let run_id = self.run_id;
        let mut tx = self.conn.transaction()?;
        let stmt = tx.prepare(
            "INSERT INTO tracks (run_id, track_id, class_id, first_frame, last_frame, first_t, last_t, \
             frames, mean_score, path_px, mean_speed, max_speed, x1, y1, x2, y2) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (run_id, track_id) DO UPDATE SET class_id = excluded.class_id, \
             first_frame = excluded.first_frame, last_frame = excluded.last_frame, \
             first_t = excluded.first_t, last_t = excluded.last_t, frames = excluded.frames, \
             mean_score = excluded.mean_score, path_px = excluded.path_px, \
             mean_speed = excluded.mean_speed, max_speed = excluded.max_speed, \
             x1 = excluded.x1, y1 = excluded.y1, x2 = excluded.x2, y2 = excluded.y2",
        )?;
        for t in tracks.iter().map(TrackRow::from) {
            tx.execute(
                &stmt,
                &[
                    &run_id,
                    &i64::from(t.track_id),
                    &i32::from(t.class_id),
                    &(t.first_frame as i64),
                    &(t.last_frame as i64),
                    &t.first_t,
                    &t.last_t,
                    &(t.frames as i64),
                    &t.mean_score,
                    &t.path_px,
                    &t.mean_speed,
                    &t.max_speed,
                    &t.region.x1,
                    &t.region.y1,
                    &t.region.x2,
                    &t.region.y2,
                ],
            )?;
        }
        tx.commit()
    }
}

impl RunSink for PgRunSink {
    fn run_id(&self) -> i64 {
        self.run_id
    }

    fn frames(&mut self, frames: &[FrameDetections]) -> Result<(), SinkError> {
        if frames.is_empty() {
            return Ok(());
        }
        // `seq` advances only once the batch is committed.
        self.seq = self.write_frames(frames).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn tracks(&mut self, tracks: &[TrackSummary]) -> Result<(), SinkError> {
        self.write_tracks(tracks).map_err(|e| self.err(e))
    }

    fn spatial(
        &mut self,
        counts: &[IntervalCounts],
        ground: &[GroundTrack],
    ) -> Result<(), SinkError> {
        let Some(spec) = self.spatial.clone() else {
            return Err(SinkError {
                kind: SinkErrorKind::Other,
                message: format!(
                    "{}: run {} has counts but no lines or zones in its parameters",
                    self.db.name().display(),
                    self.run_id
                ),
            });
        };
        super::counts::insert_spatial(&mut self.conn, self.run_id, &spec, counts, ground)
            .map_err(|e| self.err(e))
    }

    fn finish(&mut self, o: &RunOutcome) -> Result<(), SinkError> {
        let run_id = self.run_id;
        self.conn
            .batch_execute("SET synchronous_commit = on")
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "UPDATE runs SET status = $2, error = $3, frames = $4, detections = $5, tracks = $6, fps = $7, \
                 timings = $8, decode = $9, \
                 finished_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                 WHERE id = $1",
                &[
                    &run_id,
                    &o.status.as_str(),
                    &o.error,
                    &(o.frames as i64),
                    &(o.detections as i64),
                    &(o.tracks as i64),
                    &o.fps,
                    &o.timings.to_string(),
                    &o.decode.to_string(),
                ],
            )
            .map_err(|e| self.err(e))?;
        // The writer is done with the run; the connection closes with the
        // sink, which would release it too.
        let _ = self.conn.execute(
            "SELECT pg_advisory_unlock($1::bigint | $2::bigint)",
            &[&RUN_LOCK, &run_id],
        );
        Ok(())
    }
}
