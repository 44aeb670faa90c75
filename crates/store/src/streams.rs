//! The live streams a service manages (`streams` table): stored when
//! created, removed when deleted, read back when the service starts.

use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::store::Store;
use crate::StoreError;

/// A stored stream: its name and its settings as the service keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredStream {
    pub name: String,
    pub spec: Value,
    /// Seconds since the Unix epoch.
    pub created_at: f64,
    /// PostgreSQL: the worker process holding the stream's lease (running
    /// it). Always `None` on SQLite, where the service runs every stream.
    pub owner: Option<String>,
    /// PostgreSQL: the owner's latest counters, written with its lease.
    pub report: Option<Value>,
    /// PostgreSQL: why the last worker that claimed it could not start it.
    pub error: Option<String>,
}

impl Store {
    /// Stores a new stream; `false` when the name is taken.
    pub fn insert_stream(&self, s: &StoredStream) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO streams (name, spec, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO NOTHING",
                params![s.name, s.spec.to_string(), s.created_at],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(n == 1)
    }

    /// Removes a stream; `false` when there was none of that name.
    pub fn delete_stream(&self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM streams WHERE name = ?1", [name])
            .map_err(|e| self.db.err(e))?;
        Ok(n == 1)
    }

    /// One stream by name.
    pub fn stream(&self, name: &str) -> Result<Option<StoredStream>, StoreError> {
        self.conn
            .query_row(
                "SELECT name, spec, created_at FROM streams WHERE name = ?1",
                [name],
                row,
            )
            .optional()
            .map_err(|e| self.db.err(e))
    }

    /// Every stored stream, oldest first.
    pub fn streams(&self) -> Result<Vec<StoredStream>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT name, spec, created_at FROM streams ORDER BY created_at, name")
            .map_err(|e| self.db.err(e))?;
        let rows = q.query_map([], row).map_err(|e| self.db.err(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))
    }
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<StoredStream> {
    let spec: String = r.get(1)?;
    Ok(StoredStream {
        name: r.get(0)?,
        spec: serde_json::from_str(&spec).unwrap_or(Value::Null),
        created_at: r.get(2)?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stored_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let s = StoredStream {
            name: "gate".into(),
            spec: serde_json::json!({"source": "rtsp://cam/1", "fps": 5.0}),
            created_at: 1.5,
            ..Default::default()
        };
        assert!(store.insert_stream(&s).unwrap());
        assert!(!store.insert_stream(&s).unwrap(), "a name is unique");
        assert_eq!(store.streams().unwrap(), vec![s.clone()]);
        assert_eq!(store.stream("gate").unwrap(), Some(s));
        assert!(store.delete_stream("gate").unwrap());
        assert!(!store.delete_stream("gate").unwrap());
        assert!(store.streams().unwrap().is_empty());
    }
}
