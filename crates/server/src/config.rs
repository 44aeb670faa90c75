//! Service configuration in two steps: [`RawConfig`] (every field optional,
//! as written in TOML, environment variables or flags) and the validated
//! [`Config`] the service runs with. Precedence: TOML file < `PEREGRINE_*`
//! environment variables < command-line flags (clap merges the last two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Configuration problems, each naming the setting and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read config file: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Settings as written; everything optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawConfig {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub media_roots: Option<Vec<PathBuf>>,
    pub workers: Option<usize>,
    /// Default model (`PEREGRINE_MODEL`).
    pub model: Option<PathBuf>,
    /// Models a job may name must be inside this folder (default: the
    /// default model's folder).
    pub model_dir: Option<PathBuf>,
    pub token: Option<String>,
    /// Token of administrators: accepted wherever `token` is, and requests
    /// carrying it see server-side absolute paths.
    pub admin_token: Option<String>,
    pub web_dir: Option<PathBuf>,
    pub upload_dir: Option<PathBuf>,
    pub max_upload_mb: Option<u64>,
    pub db_timeout_s: Option<f64>,
    /// Attempts for a job failing with a transient error (database locked).
    pub max_attempts: Option<u32>,
    /// First retry delay; doubles per attempt.
    pub retry_backoff_s: Option<f64>,
    /// Nice value of analysis threads (0..=19, default 10), so HTTP
    /// requests preempt video work on a busy machine.
    pub analysis_nice: Option<i32>,
    /// Largest video frame (width × height) a job or frame image may have.
    pub max_pixels: Option<u64>,
    /// Most threads a job may ask for (`threads`, `infer_workers`,
    /// `decode_threads`, `jobs`); default: twice the machine's cores.
    pub max_threads: Option<usize>,
    /// Largest inference batch a job may ask for (default 32).
    pub max_batch: Option<usize>,
    /// Host names the service answers to besides IP addresses and
    /// `localhost` (DNS-rebinding protection).
    pub allowed_hosts: Option<Vec<String>>,
    /// PostgreSQL: seconds a worker holds a job without renewing its lease
    /// (default 10); a job of a worker that died is retried after this.
    pub lease_s: Option<f64>,
}

impl RawConfig {
    pub fn from_toml_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        RawConfig::parse(path, &text)
    }

    /// A configuration file's contents; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })
    }

    /// `other`'s settings win where present.
    pub fn overlay(self, other: RawConfig) -> RawConfig {
        RawConfig {
            listen: other.listen.or(self.listen),
            db: other.db.or(self.db),
            media_roots: other.media_roots.or(self.media_roots),
            workers: other.workers.or(self.workers),
            model: other.model.or(self.model),
            model_dir: other.model_dir.or(self.model_dir),
            token: other.token.or(self.token),
            admin_token: other.admin_token.or(self.admin_token),
            web_dir: other.web_dir.or(self.web_dir),
            upload_dir: other.upload_dir.or(self.upload_dir),
            max_upload_mb: other.max_upload_mb.or(self.max_upload_mb),
            db_timeout_s: other.db_timeout_s.or(self.db_timeout_s),
            max_attempts: other.max_attempts.or(self.max_attempts),
            retry_backoff_s: other.retry_backoff_s.or(self.retry_backoff_s),
            analysis_nice: other.analysis_nice.or(self.analysis_nice),
            max_pixels: other.max_pixels.or(self.max_pixels),
            max_threads: other.max_threads.or(self.max_threads),
            max_batch: other.max_batch.or(self.max_batch),
            allowed_hosts: other.allowed_hosts.or(self.allowed_hosts),
            lease_s: other.lease_s.or(self.lease_s),
        }
    }
}

/// `peregrine serve` flags; each also reads its `PEREGRINE_*` variable.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeFlags {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "PEREGRINE_LISTEN")]
    pub listen: Option<String>,
    /// Database: a SQLite file (`path` or `sqlite:path`, default
    /// ./peregrine.db) or `postgres://USER@HOST:PORT/DB`, shared with
    /// `peregrine worker` processes and other API replicas.
    #[arg(long, env = "PEREGRINE_DB")]
    pub db: Option<PathBuf>,
    /// Folder whose videos jobs may analyse; repeat for several
    /// (PEREGRINE_MEDIA_ROOTS is colon-separated).
    #[arg(
        long = "media-root",
        env = "PEREGRINE_MEDIA_ROOTS",
        value_delimiter = ':'
    )]
    pub media_roots: Vec<PathBuf>,
    /// Bearer token every /api route then requires.
    #[arg(long, env = "PEREGRINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Administrators' bearer token: accepted wherever --token is, and
    /// answers to requests carrying it show server-side absolute paths
    /// (others see paths relative to the media roots).
    #[arg(long, env = "PEREGRINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Jobs analysed at once in this process (default 1); 0 (PostgreSQL
    /// only): the API alone, jobs run by `peregrine worker` processes.
    #[arg(long, env = "PEREGRINE_WORKERS")]
    pub workers: Option<usize>,
    /// TOML file with the same settings (snake_case names).
    #[arg(long, env = "PEREGRINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Default model for jobs that name none.
    #[arg(long, env = "PEREGRINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Folder of models jobs may name (default: the default model's folder).
    #[arg(long, env = "PEREGRINE_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Built dashboard (default: web/dist next to the repository).
    #[arg(long, env = "PEREGRINE_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Where uploads are stored (default: `uploads/` next to the database).
    #[arg(long, env = "PEREGRINE_UPLOAD_DIR")]
    pub upload_dir: Option<PathBuf>,
    /// Upload size limit in MiB (default 512).
    #[arg(long, env = "PEREGRINE_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Largest video frame in pixels (width × height) a job or frame image
    /// may have (default 8192 × 4320).
    #[arg(long, env = "PEREGRINE_MAX_PIXELS")]
    pub max_pixels: Option<u64>,
    /// Most threads a job may ask for in `threads`, `infer_workers`,
    /// `decode_threads` or `jobs` (default: twice the machine's cores).
    #[arg(long, env = "PEREGRINE_MAX_THREADS")]
    pub max_threads: Option<usize>,
    /// Largest `batch` a job may ask for (default 32).
    #[arg(long, env = "PEREGRINE_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// A host name clients use to reach the service (behind a proxy or
    /// under a DNS name); repeat for several (PEREGRINE_ALLOWED_HOSTS is
    /// comma-separated). IP addresses and localhost are always accepted.
    #[arg(
        long = "allowed-host",
        env = "PEREGRINE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// PostgreSQL: seconds a job stays held by a worker that stops renewing
    /// its lease (default 10).
    #[arg(long, env = "PEREGRINE_LEASE_S")]
    pub lease_s: Option<f64>,
}

impl ServeFlags {
    /// File settings (when `--config` is given) overlaid with flags and
    /// environment variables.
    pub fn to_raw(&self) -> Result<RawConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => RawConfig::from_toml_file(p)?,
            None => RawConfig::default(),
        };
        let flags = RawConfig {
            listen: self.listen.clone(),
            db: self.db.clone(),
            media_roots: (!self.media_roots.is_empty()).then(|| self.media_roots.clone()),
            workers: self.workers,
            model: self.model.clone(),
            model_dir: self.model_dir.clone(),
            token: self.token.clone(),
            admin_token: self.admin_token.clone(),
            web_dir: self.web_dir.clone(),
            upload_dir: self.upload_dir.clone(),
            max_upload_mb: self.max_upload_mb,
            max_pixels: self.max_pixels,
            max_threads: self.max_threads,
            max_batch: self.max_batch,
            allowed_hosts: (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone()),
            lease_s: self.lease_s,
            ..Default::default()
        };
        Ok(file.overlay(flags))
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// A SQLite file's path, or a PostgreSQL URL (see [`Config::db_target`]).
    pub db: PathBuf,
    /// Canonical, existing folders.
    pub media_roots: Vec<PathBuf>,
    pub workers: usize,
    pub default_model: Option<PathBuf>,
    /// Canonical; `None` only when no default model is configured either.
    pub model_dir: Option<PathBuf>,
    pub token: Option<String>,
    /// Administrators' token (see [`RawConfig::admin_token`]).
    pub admin_token: Option<String>,
    /// Built dashboard; `None` serves the API alone.
    pub web_dir: Option<PathBuf>,
    /// Canonical, created if missing.
    pub upload_dir: PathBuf,
    pub max_upload_bytes: u64,
    pub db_timeout: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub analysis_nice: i32,
    /// Largest frame (width × height) analysed or rendered.
    pub max_pixels: u64,
    /// Bound on a job's `threads`, `infer_workers`, `decode_threads`, `jobs`.
    pub max_threads: usize,
    /// Bound on a job's `batch`.
    pub max_batch: usize,
    /// Lower-case host names accepted in `Host` besides IP addresses and
    /// `localhost`.
    pub allowed_hosts: Vec<String>,
    /// How long a claimed job stays held without renewal (PostgreSQL).
    pub lease: Duration,
}

impl Config {
    /// The engine and place `db` names.
    pub fn db_target(&self) -> peregrine_store::DbTarget {
        peregrine_store::DbTarget::from_path(&self.db)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen_s = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_s
            .parse()
            .map_err(|e| invalid("listen", format!("{listen_s:?}: {e}")))?;
        let db = raw.db.unwrap_or_else(|| PathBuf::from("peregrine.db"));
        let target = peregrine_store::DbTarget::from_path(&db);
        if let peregrine_store::DbTarget::Sqlite(path) = &target {
            if path.is_dir() {
                return Err(invalid("db", format!("{} is a directory", path.display())));
            }
        }
        let roots = raw.media_roots.unwrap_or_default();
        if roots.is_empty() {
            return Err(invalid(
                "media_roots",
                "at least one media root is required",
            ));
        }
        let media_roots = roots
            .iter()
            .map(|r| canonical_dir("media_roots", r))
            .collect::<Result<Vec<_>, _>>()?;
        let workers = raw.workers.unwrap_or(1);
        if workers == 0 && !target.is_postgres() {
            return Err(invalid(
                "workers",
                "0 (the API alone) needs a PostgreSQL database shared with `peregrine worker` processes",
            ));
        }
        if workers > 64 {
            return Err(invalid("workers", format!("must be 0..=64, got {workers}")));
        }
        let default_model = match raw.model {
            Some(m) => Some(
                std::fs::canonicalize(&m)
                    .map_err(|e| invalid("model", format!("{}: {e}", m.display())))?,
            ),
            None => None,
        };
        let model_dir = match raw.model_dir {
            Some(d) => Some(canonical_dir("model_dir", &d)?),
            None => default_model
                .as_ref()
                .and_then(|m| m.parent().map(Path::to_path_buf)),
        };
        let token = raw.token.filter(|t| !t.is_empty());
        let admin_token = raw.admin_token.filter(|t| !t.is_empty());
        for (setting, t) in [("token", &token), ("admin_token", &admin_token)] {
            if let Some(t) = t {
                if t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        setting,
                        "must be at least 8 characters, without spaces",
                    ));
                }
            }
        }
        if admin_token.is_some() && admin_token == token {
            return Err(invalid(
                "admin_token",
                "must differ from token (else every client is an administrator)",
            ));
        }
        let web_dir = match raw.web_dir {
            Some(d) => Some(d),
            None => default_web_dir(),
        }
        .filter(|d| d.join("index.html").is_file());
        let upload_dir = raw.upload_dir.unwrap_or_else(|| match &target {
            peregrine_store::DbTarget::Postgres(_) => PathBuf::from("uploads"),
            peregrine_store::DbTarget::Sqlite(db) => db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("uploads"),
        });
        std::fs::create_dir_all(&upload_dir)
            .map_err(|e| invalid("upload_dir", format!("{}: {e}", upload_dir.display())))?;
        let upload_dir = canonical_dir("upload_dir", &upload_dir)?;
        let max_upload_mb = raw.max_upload_mb.unwrap_or(512);
        if max_upload_mb == 0 {
            return Err(invalid("max_upload_mb", "must be at least 1"));
        }
        let secs = |name: &'static str, v: Option<f64>, default: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && v >= 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(invalid(
                    name,
                    format!("must be a non-negative number, got {v}"),
                ))
            }
        };
        let max_attempts = raw.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        let analysis_nice = raw.analysis_nice.unwrap_or(10);
        if !(0..=19).contains(&analysis_nice) {
            return Err(invalid(
                "analysis_nice",
                format!("must be 0..=19, got {analysis_nice}"),
            ));
        }
        let max_pixels = raw.max_pixels.unwrap_or(peregrine_core::DEFAULT_MAX_PIXELS);
        if max_pixels == 0 {
            return Err(invalid("max_pixels", "must be at least 1"));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_threads = raw.max_threads.unwrap_or(cores * 2);
        if !(1..=1024).contains(&max_threads) {
            return Err(invalid(
                "max_threads",
                format!("must be 1..=1024, got {max_threads}"),
            ));
        }
        let max_batch = raw.max_batch.unwrap_or(32);
        if !(1..=1024).contains(&max_batch) {
            return Err(invalid(
                "max_batch",
                format!("must be 1..=1024, got {max_batch}"),
            ));
        }
        let allowed_hosts = raw
            .allowed_hosts
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                let h = h.trim().to_ascii_lowercase();
                let ok = !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if ok {
                    Ok(h)
                } else {
                    Err(invalid(
                        "allowed_hosts",
                        format!("{h:?} is not a host name (no scheme, port or path)"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            max_pixels,
            max_threads,
            max_batch,
            allowed_hosts,
            analysis_nice,
            listen,
            db,
            media_roots,
            workers,
            default_model,
            model_dir,
            token,
            admin_token,
            web_dir,
            upload_dir,
            max_upload_bytes: max_upload_mb * 1024 * 1024,
            db_timeout: secs("db_timeout_s", raw.db_timeout_s, 10.0)?,
            max_attempts,
            retry_backoff: secs("retry_backoff_s", raw.retry_backoff_s, 2.0)?,
            lease: secs("lease_s", raw.lease_s, 10.0)?,
        })
    }
}

fn canonical_dir(setting: &'static str, p: &Path) -> Result<PathBuf, ConfigError> {
    let c =
        std::fs::canonicalize(p).map_err(|e| invalid(setting, format!("{}: {e}", p.display())))?;
    if !c.is_dir() {
        return Err(invalid(setting, format!("{} is not a folder", p.display())));
    }
    Ok(c)
}

/// `PEREGRINE_WEB_DIR` is read by the flags; without it, look for
/// `web/dist` beside the executable's repository (`target/<profile>/exe`).
fn default_web_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|a| a.join("web/dist"))
        .find(|d| d.join("index.html").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_with_root(root: &Path) -> RawConfig {
        RawConfig {
            media_roots: Some(vec![root.to_path_buf()]),
            db: Some(root.join("x.db")),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::from_raw(raw_with_root(d.path())).unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.workers, 1);
        assert!(c.upload_dir.ends_with("uploads"));
    }

    #[test]
    fn toml_then_flags_take_precedence() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.toml");
        std::fs::write(
            &f,
            format!(
                "listen = \"127.0.0.1:9000\"\nworkers = 3\nmedia_roots = [{:?}]\n",
                d.path()
            ),
        )
        .unwrap();
        let flags = ServeFlags {
            config: Some(f),
            workers: Some(2),
            db: Some(d.path().join("a.db")),
            ..Default::default()
        };
        let c = Config::from_raw(flags.to_raw().unwrap()).unwrap();
        assert_eq!(c.workers, 2);
        assert_eq!(c.listen.port(), 9000);
    }

    #[test]
    fn rejects_unknown_toml_keys_and_bad_values() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.toml");
        std::fs::write(&f, "listne = \"x\"\n").unwrap();
        assert!(RawConfig::from_toml_file(&f).is_err());
        let mut raw = raw_with_root(d.path());
        raw.workers = Some(0);
        let e = Config::from_raw(raw).unwrap_err().to_string();
        assert!(e.contains("needs a PostgreSQL database"), "{e}");
        // The API alone, on a database shared with worker processes.
        let mut raw = raw_with_root(d.path());
        raw.workers = Some(0);
        raw.db = Some("postgres://u@h/db".into());
        raw.upload_dir = Some(d.path().join("up"));
        raw.lease_s = Some(2.5);
        let c = Config::from_raw(raw).unwrap();
        assert_eq!((c.workers, c.lease), (0, Duration::from_millis(2500)));
        assert!(c.db_target().is_postgres());
        let mut raw = raw_with_root(d.path());
        raw.media_roots = Some(vec![d.path().join("missing")]);
        assert!(Config::from_raw(raw).is_err());
        let mut raw = raw_with_root(d.path());
        raw.token = Some("short".into());
        assert!(Config::from_raw(raw).is_err());
        for bad in [
            RawConfig {
                max_pixels: Some(0),
                ..raw_with_root(d.path())
            },
            RawConfig {
                max_threads: Some(0),
                ..raw_with_root(d.path())
            },
            RawConfig {
                max_batch: Some(100_000),
                ..raw_with_root(d.path())
            },
            RawConfig {
                allowed_hosts: Some(vec!["http://example.com/".into()]),
                ..raw_with_root(d.path())
            },
        ] {
            assert!(Config::from_raw(bad).is_err());
        }
        let c = Config::from_raw(RawConfig {
            allowed_hosts: Some(vec![" Video.Example.COM ".into()]),
            ..raw_with_root(d.path())
        })
        .unwrap();
        assert_eq!(c.allowed_hosts, vec!["video.example.com"]);
    }
}
