//! Peregrine's store: videos, runs, detections and tracks in one SQLite
//! file (the embedded default) or a PostgreSQL database shared by many
//! processes and machines ([`pg`]); [`DbTarget`] tells which a `--db`
//! value names and [`Results`] reads either.
//!
//! A key design decision in this crate is that a run's status is the source
//! of truth for whether its rows can be trusted: a run is created as
//! `running`, detections are appended in batched transactions while it
//! runs, and only the final update marks it `complete` (or `partial` for a
//! truncated input). The result cache only ever returns complete or partial
//! runs, so a crash, a kill or Ctrl-C can leave rows behind but never a run
//! that looks finished.

mod counts;
mod error;
mod evals;
pub mod evaluate;
pub mod jobs;
mod listing;
pub mod pg;
mod results;
mod schema;
mod sink;
mod store;
mod streams;
mod target;

pub use error::StoreError;
pub use evals::{ErrorFrame, ErrorPage, EvalRecord, MatchPage, MatchQuery, MatchRow, NewEval};
pub use listing::{
    clean_upload_name, Deleted, RunCursor, RunListItem, RunListPage, RunListQuery, RunSort,
    Timeline, TimelineBin, TimelineQuery,
};
pub use pg::{PgRunStore, PgStore, StreamClaim};
pub use results::{open_run_store, Results};
#[doc(hidden)]
pub use schema::{Migration, Step, MIGRATIONS};
pub use sink::SqliteRunStore;
pub use store::{
    pid_alive, DetectionItem, DetectionPage, DetectionQuery, DetectionRow, NewRun, RunOutcome,
    RunRecord, RunStatus, Store, TrackRow, VideoRecord,
};
pub use streams::StoredStream;
pub use target::{redact, DbTarget};
