//! The request handlers' connection pool. Each pooled entry holds a
//! `Store` (results) and the job queue, both on the one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use peregrine_store::jobs::SqliteJobs;
use peregrine_store::{Store, StoreError};

/// One pooled pair of connections.
pub struct Conns {
    pub store: Store,
    pub jobs: SqliteJobs,
}

/// A small connection pool; callers bound concurrency with a semaphore, so
/// the pool never holds more idle entries than that.
pub struct Pool {
    path: PathBuf,
    timeout: Duration,
    idle: Mutex<Vec<Conns>>,
}

pub struct PooledConns<'p> {
    pool: &'p Pool,
    conns: Option<Conns>,
}

impl std::ops::Deref for PooledConns<'_> {
    type Target = Conns;
    fn deref(&self) -> &Conns {
        self.conns.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledConns<'_> {
    fn deref_mut(&mut self) -> &mut Conns {
        self.conns.as_mut().expect("present until drop")
    }
}

impl Drop for PooledConns<'_> {
    fn drop(&mut self) {
        if let (Some(c), Ok(mut idle)) = (self.conns.take(), self.pool.idle.lock()) {
            idle.push(c);
        }
    }
}

impl Pool {
    pub fn new(path: &Path, timeout: Duration) -> Pool {
        Pool {
            path: path.to_path_buf(),
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn open(&self) -> Result<Conns, StoreError> {
        let store = Store::open_with_timeout(&self.path, self.timeout)?;
        store.map_for_reads()?;
        let jobs = SqliteJobs::open(&self.path, self.timeout)?;
        Ok(Conns { store, jobs })
    }

    pub fn get(&self) -> Result<PooledConns<'_>, StoreError> {
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conns = match reused {
            Some(c) => c,
            None => self.open()?,
        };
        Ok(PooledConns {
            pool: self,
            conns: Some(conns),
        })
    }
}
