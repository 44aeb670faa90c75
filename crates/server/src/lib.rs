//! `peregrine serve`: the analysis engine as an HTTP service.
//!
//! A key design decision in this crate is that no request ever waits on
//! video work: handlers only read and write SQLite (on blocking threads,
//! through a small pool bounded by a semaphore) while analyses run on
//! dedicated worker threads that claim jobs from a durable queue table in
//! the same database. Progress flows back through shared atomics and a
//! bounded broadcast channel that feeds Server-Sent Events.

pub mod api;
pub mod config;
pub mod db;
pub mod engines;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod metrics;
pub mod paths;
pub mod spec;
pub mod state;
pub mod stream_leases;
pub mod streams;
mod web;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::{Config, ConfigError, RawConfig, ServeFlags};
pub use error::ApiError;
pub use state::AppState;

/// Failures starting or running the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {reason}", .path.display())]
    Database {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Peregrine",
        description = "Video analytics service: jobs, runs, detections, tracks."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Analysis jobs (durable queue)"),
        (name = "runs", description = "Stored results"),
        (name = "evals", description = "Evaluations against ground truth, their per-frame matching, comparison of runs"),
        (name = "streams", description = "Live streams on the shared engine"),
        (name = "videos", description = "Videos in the media roots"),
        (name = "ops", description = "Health and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers every route may give because of the guards in front of it
/// ([`extract::check_host_and_origin`], [`extract::require_token`]): 421
/// for a foreign `Host`, 403 for a state-changing request from another
/// origin, and 401 without the token on the routes that need it.
struct RequestGuards;

impl Modify for RequestGuards {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder};
        let error = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/json",
                        utoipa::openapi::content::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (op, changes_state) in ops {
                let Some(op) = op.as_mut() else { continue };
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let r = &mut op.responses.responses;
                if secured {
                    r.entry("401".into())
                        .or_insert_with(|| error("Missing or invalid bearer token"));
                }
                r.entry("421".into()).or_insert_with(|| {
                    error("Host is not a name of this server (DNS rebinding guard)")
                });
                if changes_state {
                    r.entry("403".into())
                        .or_insert_with(|| error("Forbidden (e.g. a request from another origin)"));
                }
            }
        }
    }
}

/// The API routes (token-protected), the ops routes, and the OpenAPI
/// document generated from both.
fn all_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::jobs::create_job, api::jobs::list_jobs))
        .routes(routes!(api::jobs::get_job))
        .routes(routes!(api::jobs::cancel_job))
        .routes(routes!(api::events::job_events))
        .routes(routes!(api::runs::list_runs))
        .routes(routes!(api::runs::get_run, api::runs::delete_run))
        .routes(routes!(api::video::video))
        .routes(routes!(api::runs::timeline))
        .routes(routes!(api::runs::frames_index))
        .routes(routes!(api::models::models))
        .routes(routes!(api::models::whoami))
        .routes(routes!(api::runs::detections))
        .routes(routes!(api::runs::tracks))
        .routes(routes!(api::runs::counts))
        .routes(routes!(api::runs::frame))
        .routes(routes!(api::evals::create_eval, api::evals::list_evals))
        .routes(routes!(api::evals::get_eval))
        .routes(routes!(api::evals::eval_matches))
        .routes(routes!(api::evals::eval_errors))
        .routes(routes!(api::evals::compare))
        .routes(routes!(api::gait::gait))
        .routes(routes!(api::gait::gait_report))
        .routes(routes!(
            api::streams::create_stream,
            api::streams::list_streams
        ))
        .routes(routes!(api::streams::stream_events))
        .routes(routes!(api::streams::stream_frame))
        .routes(routes!(
            api::streams::get_stream,
            api::streams::delete_stream
        ))
        .routes(routes!(api::ops::videos))
        .routes(routes!(api::ops::workers))
        .split_for_parts();
    let (ops, ops_doc) = OpenApiRouter::new()
        .routes(routes!(api::ops::health))
        .routes(routes!(api::ops::metrics))
        .split_for_parts();
    doc.merge(ops_doc);
    // After the routes are in: it adds to every operation.
    RequestGuards.modify(&mut doc);
    (api, ops, doc)
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    all_routes().2
}

/// The whole HTTP application for `state` (used in-process by tests).
pub fn router(state: AppState) -> Router {
    let (api, ops, doc) = all_routes();
    let doc_json = std::sync::Arc::new(doc.to_pretty_json().unwrap_or_default());
    let api = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let d = doc_json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        d.as_str().to_owned(),
                    )
                }
            }),
        )
        .route("/api", axum::routing::any(api::ops::api_not_found))
        .route("/api/{*rest}", axum::routing::any(api::ops::api_not_found))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::require_token,
        ))
        .layer(DefaultBodyLimit::max(
            (state.config.max_upload_bytes + 1024 * 1024) as usize,
        ))
        .layer(axum::middleware::from_fn(extract::json_errors));
    web::attach(api.merge(ops), state.config.web_dir.as_deref())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::check_host_and_origin,
        ))
        .with_state(state)
}

/// The running service: state plus job worker threads.
pub struct Service {
    state: AppState,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Service {
    /// Opens the database, applies the restart policy to jobs a dead
    /// process left running, and starts the job workers.
    pub fn start(config: Config) -> Result<Service, ServerError> {
        let db_err = |reason: String| ServerError::Database {
            path: config.db_target().display_name().into(),
            reason,
        };
        let target = config.db_target();
        peregrine_store::Results::open(&target, config.db_timeout)
            .map_err(|e| db_err(e.to_string()))?;
        let me = peregrine_store::pg::Membership::new(config.lease, config.max_attempts);
        let (requeued, failed) = db::open_queue(&target, config.db_timeout, &me)
            .and_then(|q| q.recover_orphans())
            .map_err(|e| db_err(e.to_string()))?;
        if requeued + failed > 0 {
            tracing::warn!(requeued, failed, "jobs interrupted by a restart");
        }
        let removed = api::uploads::remove_stale_uploads(&config.upload_dir);
        if removed > 0 {
            tracing::warn!(removed, "removed unfinished uploads left by a previous run");
        }
        let state = AppState::new(config);
        let mut workers = jobs::start_workers(&state);
        if target.is_postgres() {
            worker::listen_for_jobs(&state)?;
            worker::start_heartbeat(&state)?;
            workers.extend(stream_leases::start(&state)?);
        }
        // Stored live streams start again; the first loads the model, so
        // not on the caller's thread.
        let st = state.clone();
        std::thread::Builder::new()
            .name("streams-resume".into())
            .spawn(move || st.streams.resume(&st))?;
        Ok(Service { state, workers })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Stops analyses (running jobs go back to the queue) and joins the
    /// workers.
    pub async fn shutdown(self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        self.state.wake.notify();
        // The state is dropped there too: the last reference takes the
        // pooled connections with it, and a PostgreSQL client cannot be
        // dropped on an async thread (it blocks on a runtime of its own).
        let _ = tokio::task::spawn_blocking(move || {
            self.state.streams.shutdown();
            for w in self.workers {
                let _ = w.join();
            }
            drop(self.state);
        })
        .await;
    }
}

/// Serves on an already bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Opening the database blocks (PostgreSQL's client runs a runtime of
    // its own, which cannot start on this one's threads).
    let service = tokio::task::spawn_blocking(move || Service::start(config))
        .await
        .map_err(std::io::Error::other)??;
    let app = service.router();
    let stop = service.state().shutdown.clone();
    let wake_state = service.state().clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Ends SSE streams and stops analyses before connections drain.
            stop.store(true, Ordering::SeqCst);
            wake_state.wake.notify();
        })
        .await?;
    service.shutdown().await;
    Ok(())
}

/// Binds `config.listen` and serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    tracing::info!(%addr, web = ?config.web_dir, "listening");
    serve_on(listener, config, shutdown_signal()).await
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the service on a new multi-threaded runtime (for the CLI).
pub fn run_blocking(config: Config) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(64)
        .build()?;
    rt.block_on(serve(config))
}
