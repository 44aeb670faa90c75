//! The pipeline's [`RunStore`] and [`RunSink`] on SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peregrine_core::{
    CachedRun, FrameDetections, GroundTrack, IntervalCounts, Labels, RunOutcome, RunSink, RunStart,
    RunStatus, RunStore, SinkError, SinkErrorKind, SpatialSpec, TrackSummary,
};

use crate::{NewRun, RunRecord, Store, StoreError, TrackRow};

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        let kind = match e {
            StoreError::Locked { .. } | StoreError::Unavailable { .. } => SinkErrorKind::Busy,
            StoreError::DiskFull { .. } => SinkErrorKind::Full,
            _ => SinkErrorKind::Other,
        };
        SinkError {
            kind,
            message: e.to_string(),
        }
    }
}

/// Runs recorded in one SQLite file. Each run writes through its own
/// connection, so runs on several threads never share one.
#[derive(Clone, Debug)]
pub struct SqliteRunStore {
    path: PathBuf,
    busy_timeout: Duration,
}

impl SqliteRunStore {
    /// Opens (creating and migrating if needed) the database once, so a bad
    /// path fails before any work; writers wait up to `busy_timeout` for
    /// another process's lock.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        Store::open_with_timeout(path, busy_timeout)?;
        Ok(Self {
            path: path.to_path_buf(),
            busy_timeout,
        })
    }

    fn connect(&self) -> Result<Store, StoreError> {
        Store::open_with_timeout(&self.path, self.busy_timeout)
    }
}

impl RunRecord {
    /// The class names the run was analysed with: the `labels` of its
    /// parameters, or COCO's.
    pub fn labels(&self) -> Labels {
        self.params
            .get("labels")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|n| n.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|names| !names.is_empty())
            .map_or_else(Labels::coco, Labels::from_names)
    }
}

fn cached_run(r: RunRecord) -> CachedRun {
    CachedRun {
        id: r.id,
        status: r.status,
        error: r.error,
        frames: r.frames,
        detections: r.detections,
        tracks: r.tracks,
        fps: r.fps,
        timings: r.timings,
        decode: r.decode,
    }
}

impl RunStore for SqliteRunStore {
    fn cached(&self, cache_key: &str) -> Result<Option<CachedRun>, SinkError> {
        Ok(self.connect()?.find_cached_run(cache_key)?.map(cached_run))
    }

    fn begin(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        self.begin_as(start, RunStatus::Running)
    }

    fn begin_live(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        self.begin_as(start, RunStatus::Live)
    }
}

impl SqliteRunStore {
    fn begin_as(&self, start: &RunStart, status: RunStatus) -> Result<Box<dyn RunSink>, SinkError> {
        let store = self.connect()?;
        let video_id = store.upsert_video(&start.video)?;
        let run_id = store.begin_run_as(
            &NewRun {
                video_id,
                cache_key: start.cache_key.clone(),
                model_path: start.model_path.clone(),
                model_hash: start.model_hash.clone(),
                params: start.params.clone(),
                versions: start.versions.clone(),
            },
            status,
        )?;
        let spatial = spatial_spec(&start.params);
        Ok(Box::new(SqliteRunSink {
            store,
            run_id,
            spatial,
        }))
    }
}

/// One run's results, each call one transaction.
struct SqliteRunSink {
    store: Store,
    run_id: i64,
    /// Names the lines and zones of the counts.
    spatial: Option<SpatialSpec>,
}

/// The lines and zones a run counts: `params.spatial`.
pub fn spatial_spec(params: &serde_json::Value) -> Option<SpatialSpec> {
    serde_json::from_value(params.get("spatial")?.clone()).ok()
}

impl RunRecord {
    /// The lines, zones and calibration the run was analysed with.
    pub fn spatial(&self) -> Option<SpatialSpec> {
        spatial_spec(&self.params)
    }
}

impl From<&TrackSummary> for TrackRow {
    fn from(t: &TrackSummary) -> Self {
        TrackRow {
            track_id: t.track_id,
            class_id: t.class_id,
            first_frame: t.first_frame,
            last_frame: t.last_frame,
            first_t: t.first_time_s,
            last_t: t.last_time_s,
            frames: t.frames_seen,
            mean_score: t.mean_score,
            path_px: t.path_length_px,
            mean_speed: t.mean_speed_px_s.unwrap_or(0.0),
            max_speed: t.max_speed_px_s.unwrap_or(0.0),
            region: t.region,
        }
    }
}

impl RunSink for SqliteRunSink {
    fn run_id(&self) -> i64 {
        self.run_id
    }

    fn frames(&mut self, frames: &[FrameDetections]) -> Result<(), SinkError> {
        self.store.insert_frames(
            self.run_id,
            frames.iter().map(|f| (&f.meta, f.detections.as_slice())),
        )?;
        Ok(())
    }

    fn tracks(&mut self, tracks: &[TrackSummary]) -> Result<(), SinkError> {
        let rows: Vec<TrackRow> = tracks.iter().map(TrackRow::from).collect();
        Ok(self.store.upsert_tracks(self.run_id, &rows)?)
    }

    fn spatial(
        &mut self,
        counts: &[IntervalCounts],
        ground: &[GroundTrack],
    ) -> Result<(), SinkError> {
        let Some(spec) = &self.spatial else {
            return Err(SinkError {
                kind: SinkErrorKind::Other,
                message: format!(
                    "{}: run {} has counts but no lines or zones in its parameters",
                    self.store.path().display(),
                    self.run_id
                ),
            });
        };
        Ok(self
            .store
            .insert_spatial(self.run_id, spec, counts, ground)?)
    }

    fn finish(&mut self, outcome: &RunOutcome) -> Result<(), SinkError> {
        Ok(self.store.finish_run(self.run_id, outcome)?)
    }
}
