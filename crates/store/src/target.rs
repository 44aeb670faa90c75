//! Which engine a `--db` value names: a SQLite file (`path` or
//! `sqlite:path`) or a PostgreSQL database (`postgres://…`,
//! `postgresql://…`).

use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed `--db` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(PathBuf),
    /// A libpq-style URL, kept as given (it may hold a password; shown
    /// through [`DbTarget::display_name`] only).
    Postgres(String),
}

impl DbTarget {
    /// `postgres://` and `postgresql://` name PostgreSQL; `sqlite:` is
    /// stripped; anything else is a SQLite file path.
    pub fn parse(value: &str) -> DbTarget {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            DbTarget::Postgres(value.to_owned())
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            DbTarget::Sqlite(PathBuf::from(path.strip_prefix("//").unwrap_or(path)))
        } else {
            DbTarget::Sqlite(PathBuf::from(value))
        }
    }

    /// The same from a path-typed flag (clap's `PathBuf`).
    pub fn from_path(p: &Path) -> DbTarget {
        DbTarget::parse(&p.to_string_lossy())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DbTarget::Postgres(_))
    }

    /// The file, or the URL without its password: what errors name.
    pub fn display_name(&self) -> String {
        match self {
            DbTarget::Sqlite(p) => p.display().to_string(),
            DbTarget::Postgres(url) => redact(url),
        }
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let (userinfo, host) = rest.split_at(at);
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_told_apart_by_scheme() {
        assert_eq!(
            DbTarget::parse("runs.db"),
            DbTarget::Sqlite("runs.db".into())
        );
        assert_eq!(
            DbTarget::parse("sqlite:/tmp/a.db"),
            DbTarget::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            DbTarget::parse("sqlite:///tmp/a.db"),
            DbTarget::Sqlite("/tmp/a.db".into())
        );
        assert!(DbTarget::parse("postgres://u@h/db").is_postgres());
        assert!(DbTarget::parse("postgresql://u@h/db").is_postgres());
    }

    #[test]
    fn passwords_are_never_shown() {
        let t = DbTarget::parse("postgres://me:hunter2@db:5432/pg");
        assert_eq!(t.display_name(), "postgres://me@db:5432/pg");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
