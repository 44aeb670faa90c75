//! Stored results behind one type, whichever engine holds them: what the
//! CLI's read commands and the service's read paths use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{FrameMeta, GroundTrack, IntervalCounts, RunStore, SpatialSpec};
use serde_json::Value;

use crate::pg::{PgRunStore, PgStore};
use crate::{
    DbTarget, Deleted, DetectionPage, DetectionQuery, DetectionRow, RunListPage, RunListQuery,
    RunRecord, SqliteRunStore, Store, StoreError, StoredStream, Timeline, TimelineQuery, TrackRow,
    VideoRecord,
};

/// A connection to stored results: a SQLite file or a PostgreSQL database.
pub enum Results {
    Sqlite(Store),
    Postgres(Box<PgStore>),
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
    /// Opens (creating and migrating if needed) the database `target`
    /// names; SQLite writers wait up to `timeout` for a lock, PostgreSQL
    /// connections up to `timeout` to connect.
    pub fn open(target: &DbTarget, timeout: Duration) -> Result<Results, StoreError> {
        Ok(match target {
            DbTarget::Sqlite(p) => Results::Sqlite(Store::open_with_timeout(p, timeout)?),
            DbTarget::Postgres(url) => Results::Postgres(Box::new(PgStore::open(url, timeout)?)),
        })
    }

    /// The database file, or the URL without its password.
    pub fn path(&self) -> &Path {
        both!(self, s => s.path())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        both!(self, s => s.runs())
    }

    pub fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        both!(self, s => s.run(id))
    }

    pub fn find_cached_run(&self, cache_key: &str) -> Result<Option<RunRecord>, StoreError> {
        both!(self, s => s.find_cached_run(cache_key))
    }

    pub fn video(&self, id: i64) -> Result<Option<VideoRecord>, StoreError> {
        both!(self, s => s.video(id))
    }

    pub fn tracks(&self, run_id: i64) -> Result<Vec<TrackRow>, StoreError> {
        both!(self, s => s.tracks(run_id))
    }

    pub fn for_each_detection<E>(
        &self,
        run_id: i64,
        f: impl FnMut(&DetectionRow) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        both!(self, s => s.for_each_detection(run_id, f))
    }

    pub fn detections_page(
        &self,
        run_id: i64,
        q: &DetectionQuery,
    ) -> Result<DetectionPage, StoreError> {
        both!(self, s => s.detections_page(run_id, q))
    }

    pub fn count_intervals(
        &self,
        run_id: i64,
        spec: &SpatialSpec,
    ) -> Result<Vec<IntervalCounts>, StoreError> {
        both!(self, s => s.count_intervals(run_id, spec))
    }

    pub fn ground_tracks(&self, run_id: i64) -> Result<Vec<GroundTrack>, StoreError> {
        both!(self, s => s.ground_tracks(run_id))
    }

    pub fn counts_json(&self, run: &RunRecord) -> Result<Option<Value>, StoreError> {
        both!(self, s => s.counts_json(run))
    }

    pub fn for_each_frame<E>(
        &self,
        run_id: i64,
        width: u32,
        height: u32,
        f: impl FnMut(&FrameMeta, &[DetectionRow]) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        both!(self, s => s.for_each_frame(run_id, width, height, f))
    }

    pub fn save_eval(
        &self,
        run_id: i64,
        kind: &str,
        gt_path: &str,
        metrics: &Value,
    ) -> Result<i64, StoreError> {
        both!(self, s => s.save_eval(run_id, kind, gt_path, metrics))
    }

    /// Stores a new live stream; `false` when the name is taken.
    pub fn insert_stream(&self, s: &StoredStream) -> Result<bool, StoreError> {
        both!(self, st => st.insert_stream(s))
    }

    /// Removes a stream; `false` when there was none of that name.
    pub fn delete_stream(&self, name: &str) -> Result<bool, StoreError> {
        both!(self, s => s.delete_stream(name))
    }

    /// One stored stream by name.
    pub fn stream(&self, name: &str) -> Result<Option<StoredStream>, StoreError> {
        both!(self, s => s.stream(name))
    }

    /// Every stored stream, oldest first.
    pub fn streams(&self) -> Result<Vec<StoredStream>, StoreError> {
        both!(self, s => s.streams())
    }

    /// The PostgreSQL connection, for what only a shared database does
    /// (stream leases).
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Results::Sqlite(_) => None,
            Results::Postgres(s) => Some(s),
        }
    }

    /// One page of every run in the database.
    pub fn list_runs(&self, q: &RunListQuery) -> Result<RunListPage, StoreError> {
        both!(self, s => s.list_runs(q))
    }

    /// Deletes a run that is not being written, with all its rows.
    pub fn delete_run(&mut self, id: i64) -> Result<Deleted, StoreError> {
        both!(self, s => s.delete_run(id))
    }

    /// A run's detections counted per bin of frames.
    pub fn timeline(&self, run_id: i64, q: &TimelineQuery) -> Result<Timeline, StoreError> {
        both!(self, s => s.timeline(run_id, q))
    }

    /// Every analysed frame's index and time.
    pub fn frame_times(&self, run_id: i64) -> Result<Vec<(u64, f64)>, StoreError> {
        both!(self, s => s.frame_times(run_id))
    }

    /// Records an upload's original file name (the first one stays).
    pub fn save_upload_name(&self, path: &str, name: &str) -> Result<(), StoreError> {
        both!(self, s => s.save_upload_name(path, name))
    }

    /// Original names of stored uploads: (stored path, name).
    pub fn upload_names(&self, paths: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        both!(self, s => s.upload_names(paths))
    }

    /// Rows of every table that belong to run `run_id` (for tests of
    /// deletion).
    #[doc(hidden)]
    pub fn rows_of_run(&self, run_id: i64) -> Result<u64, StoreError> {
        both!(self, s => s.rows_of_run(run_id))
    }

    /// The SQLite connection, for what only SQLite stores so far.
    pub fn sqlite(&self) -> Option<&Store> {
        match self {
            Results::Sqlite(s) => Some(s),
            Results::Postgres(_) => None,
        }
    }
}

/// The pipeline's store for `target`: where `analyze`, jobs and live
/// streams write runs.
pub fn open_run_store(
    target: &DbTarget,
    timeout: Duration,
) -> Result<Arc<dyn RunStore>, StoreError> {
    Ok(match target {
        DbTarget::Sqlite(p) => Arc::new(SqliteRunStore::open(p, timeout)?),
        DbTarget::Postgres(url) => Arc::new(PgRunStore::open(url, timeout)?),
    })
}
