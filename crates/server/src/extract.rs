//! Request guards shared by every route: extractors whose rejections are
//! JSON errors in the API's shape, the `Host`/`Origin` check, the bearer
//! token, and a last net that turns any other non-JSON error answer under
//! `/api` into one.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// `axum::extract::Query`, rejected as a JSON 400 naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `axum::extract::Path`, rejected as a JSON 400 naming the problem.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The host part of a `Host` value or an origin's authority, lower-cased,
/// without port or IPv6 brackets.
fn host_name(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match a.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => a,
    }
}

/// Whether `Host` names this server: an IP address (DNS rebinding needs a
/// name, and a browser's origin for an IP is that IP), `localhost` or a
/// name under it, or a configured name.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let h = host_name(host);
    h.parse::<std::net::IpAddr>().is_ok()
        || h == "localhost"
        || h.ends_with(".localhost")
        || allowed.contains(&h)
}

/// Refuses (421) requests whose `Host` is not a name of this server, the
/// signature of DNS rebinding, and (403) state-changing requests sent by a
/// page of another origin: their `Origin` must be this server as the
/// client addressed it (`Host`) or one of the configured names. Requests
/// without `Host` or `Origin` (curl, scripts, HTTP/1.0) are not browsers
/// acting for another site and pass.
pub async fn check_host_and_origin(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers: &HeaderMap = req.headers();
    let host = headers
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(h) = host {
        if !host_allowed(h, &st.config.allowed_hosts) {
            return Err(ApiError::MisdirectedRequest(format!(
                "Host {h:?} is not a name of this server (add it with --allowed-host)"
            )));
        }
    }
    let changes_state = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if changes_state {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let o = origin.to_str().unwrap_or("");
            let authority = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .filter(|a| !a.is_empty() && !a.contains('/'));
            let same = authority.is_some_and(|a| {
                host.is_some_and(|h| a.eq_ignore_ascii_case(h.trim()))
                    || st.config.allowed_hosts.contains(&host_name(a))
            });
            if !same {
                return Err(ApiError::Forbidden(format!(
                    "cross-origin request refused: Origin {o:?} is not this server"
                )));
            }
        }
    }
    Ok(next.run(req).await)
}

/// Who sent a request, as the bearer token tells (an extension every
/// `/api` request carries once [`require_token`] let it through).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Viewer {
    /// Carries the administrators' token: sees server-side absolute paths.
    pub admin: bool,
}

/// Seconds a signed video address ([`video_access`]) stays valid.
pub const VIDEO_ACCESS_TTL_S: u64 = 12 * 3600;

fn access_mac(token: &str, run: i64, expires: u64) -> String {
    let key = blake3::derive_key("peregrine 2026 run video access", token.as_bytes());
    let mac = blake3::keyed_hash(&key, format!("{run}:{expires}").as_bytes());
    mac.to_hex()[..32].to_string()
}

/// The `access` query value that lets a `<video>` element (which cannot
/// send an `Authorization` header) fetch run `run`'s video without the
/// token until `expires` (Unix seconds): `<expires>.<mac>`, a MAC keyed by
/// the service's token. `None` when the service has no token.
pub fn video_access(st: &AppState, run: i64, now: u64) -> Option<String> {
    let token = st.config.token.as_deref()?;
    let expires = now + VIDEO_ACCESS_TTL_S;
    Some(format!("{expires}.{}", access_mac(token, run, expires)))
}

/// Whether `req` is a GET of `/api/v1/runs/{id}/video` with a valid,
/// unexpired `access` value.
fn video_access_ok(req: &Request, token: &str) -> bool {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return false;
    }
    let Some(run) = req
        .uri()
        .path()
        .strip_prefix("/api/v1/runs/")
        .and_then(|r| r.strip_suffix("/video"))
        .and_then(|r| r.parse::<i64>().ok())
    else {
        return false;
    };
    let Some(access) = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access="))
            .map(str::to_owned)
    }) else {
        return false;
    };
    let Some((exp, mac)) = access.split_once('.') else {
        return false;
    };
    let Ok(exp) = exp.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    exp >= now
        && exp <= now + VIDEO_ACCESS_TTL_S
        && constant_time_eq(mac.as_bytes(), access_mac(token, run, exp).as_bytes())
}

/// Every `/api` route requires `Authorization: Bearer <token>` (or the
/// administrators' token) when a token is configured; a run's video also
/// takes a signed `access` query value instead ([`video_access`]). Marks
/// the request with its [`Viewer`].
pub async fn require_token(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let admin = st
        .config
        .admin_token
        .as_deref()
        .is_some_and(|a| constant_time_eq(given.as_bytes(), a.as_bytes()));
    if let Some(token) = &st.config.token {
        let ok = admin
            || constant_time_eq(given.as_bytes(), token.as_bytes())
            || video_access_ok(&req, token);
        if !ok {
            return Err(ApiError::Unauthorized);
        }
    }
    req.extensions_mut().insert(Viewer { admin });
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The last net under `/api`: any error answer that is not already JSON
/// (a rejection from axum itself, such as 405) becomes `{"error": ...}`.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut out = (status, axum::Json(crate::error::ErrorBody { error: text })).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_matched_by_name_without_port() {
        let allowed = vec!["peregrine.example.com".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:5173",
            "[::1]:8080",
            "10.0.0.7",
            "app.localhost:80",
            "Peregrine.Example.com:443",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
