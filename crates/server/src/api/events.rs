//! A job's changes as Server-Sent Events.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::jobs::load_view;
use super::wire::{JobEvent, JobView};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath as Path, Viewer};
use crate::state::AppState;

struct EventState {
    st: AppState,
    rx: tokio::sync::broadcast::Receiver<i64>,
    id: i64,
    admin: bool,
    pending: Option<JobView>,
    ended: bool,
}

fn job_event(v: &JobView) -> Event {
    let name = if v.state.is_terminal() { "end" } else { "job" };
    Event::default()
        .event(name)
        .json_data(v)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Server-Sent Events: a `job` event (JobView) on every change, about 4 per
/// second while running, and a final `end` event when the job ends.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/events",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "text/event-stream of JobView", content_type = "text/event-stream", body = JobEvent),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn job_events(
    State(st): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = st.events.subscribe();
    let admin = viewer.admin;
    let first = load_view(&st, id, admin).await?;
    let init = EventState {
        st,
        rx,
        id,
        admin,
        pending: Some(first),
        ended: false,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        if s.ended {
            return None;
        }
        if let Some(v) = s.pending.take() {
            s.ended = v.state.is_terminal();
            return Some((Ok(job_event(&v)), s));
        }
        loop {
            if s.st.shutdown.load(Ordering::SeqCst) {
                return None;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.rx.recv()).await {
                Ok(Ok(x)) if x == s.id => break,
                Ok(Ok(_)) | Err(_) => continue,
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
        let v = load_view(&s.st, s.id, s.admin).await.ok()?;
        s.ended = v.state.is_terminal();
        Some((Ok(job_event(&v)), s))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
