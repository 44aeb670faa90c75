//! The request handlers' connection pool. Each pooled entry holds the
//! results (`Results`: SQLite file or PostgreSQL) and the job queue, both on
//! the one database `--db` names.

use std::sync::Mutex;
use std::time::Duration;

use peregrine_store::jobs::{JobQueue, SqliteJobs};
use peregrine_store::pg::{Membership, PgJobs};
use peregrine_store::{DbTarget, Results, StoreError};

/// One pooled pair of connections.
pub struct Conns {
    pub store: Results,
    pub jobs: Box<dyn JobQueue + Send>,
}

/// The job queue on `target`; on PostgreSQL this process takes part as
/// `me` (its claims and leases).
pub fn open_queue(
    target: &DbTarget,
    timeout: Duration,
    me: &Membership,
) -> Result<Box<dyn JobQueue + Send>, StoreError> {
    Ok(match target {
        DbTarget::Sqlite(p) => Box::new(SqliteJobs::open(p, timeout)?),
        DbTarget::Postgres(url) => Box::new(PgJobs::open(url, timeout, me.clone())?),
    })
}

/// A small connection pool; callers bound concurrency with a semaphore, so
/// the pool never holds more idle entries than that.
pub struct Pool {
    target: DbTarget,
    timeout: Duration,
    me: Membership,
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
    pub fn new(target: DbTarget, timeout: Duration, me: Membership) -> Pool {
        Pool {
            target,
            timeout,
            me,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn open(&self) -> Result<Conns, StoreError> {
        let store = Results::open(&self.target, self.timeout)?;
        if let Some(s) = store.sqlite() {
            s.map_for_reads()?;
        }
        let jobs = open_queue(&self.target, self.timeout, &self.me)?;
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
