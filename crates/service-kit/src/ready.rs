//! The body of every server's `/readyz`: each check by name with its state.
//!
//! `200 {"status":"ready","checks":{"database":"ok","redis":"ok"}}` when every check
//! passed; otherwise `503` with `Retry-After` and
//! `{"status":"unavailable","checks":{..,"redis":"error: <reason>"},"error":"unavailable",
//! "message":"a backend is unavailable, retry shortly"}`, which keeps the common error
//! shape's `error` and `message` for clients that read only those.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One readiness check: its name and, when it failed, a short reason that is safe to show
/// (no addresses, credentials or driver text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `database` or `redis`.
    pub name: &'static str,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

/// The `/readyz` answer for `checks`; a failed one makes it a `503` with
/// `Retry-After: retry_after_secs`.
///
/// ```
/// use service_kit::ready::{Check, response};
/// let ok = response(&[Check { name: "redis", failure: None }], 1);
/// assert_eq!(ok.status(), 200);
/// let down = response(&[Check { name: "redis", failure: Some("no answer".into()) }], 1);
/// assert_eq!(down.status(), 503);
/// ```
pub fn response(checks: &[Check], retry_after_secs: u64) -> Response {
    let states: Map<String, Value> = checks
        .iter()
        .map(|check| {
            let state = match &check.failure {
                None => "ok".to_owned(),
                Some(reason) => format!("error: {reason}"),
            };
            (check.name.to_owned(), Value::String(state))
        })
        .collect();
    if checks.iter().all(|check| check.failure.is_none()) {
        return Json(json!({ "status": "ready", "checks": states })).into_response();
    }
    let body = json!({
        "status": "unavailable",
        "checks": states,
        "error": "unavailable",
        "message": "a backend is unavailable, retry shortly",
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}
