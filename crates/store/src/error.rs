use std::path::PathBuf;

/// Storage failures; each names the database (a SQLite file, or a
/// PostgreSQL URL without its password, in `path`) and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{}: cannot open database: {reason}", .path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{}: database is locked by another writer (waited {waited_ms} ms)", .path.display())]
    Locked { path: PathBuf, waited_ms: u64 },
    #[error("{}: run {run} not found", .path.display())]
    RunNotFound { path: PathBuf, run: i64 },
    #[error("{}: {reason}", .path.display())]
    Sql { path: PathBuf, reason: String },
    /// The file system holding the database is full (SQLITE_FULL, ENOSPC).
    /// The write was rolled back: earlier rows are intact.
    #[error("disk full writing {}", .path.display())]
    DiskFull { path: PathBuf },
    /// The database server cannot take the work now (connection lost,
    /// serialization failure, deadlock, too many connections): trying again
    /// later may succeed.
    #[error("{}: database unavailable: {reason}", .path.display())]
    Unavailable { path: PathBuf, reason: String },
}
