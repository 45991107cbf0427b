//! The per-request bounds every listener's router runs under, as tower layers: requests served
//! at once (a full server sheds with 503 and `Retry-After` instead of queueing, so a burst never
//! holds more request bodies in memory than the budget allows), the body size (413 on a declared
//! `Content-Length` over it, before a byte is read; a body that turns out longer is cut off at the
//! limit), the time a body may pause (408), and the time a whole request may take (408, the
//! listener's `idle_timeout`), so that a client trickling a body cannot hold a request slot.

use super::Limits;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;

/// `router` under `limits`' per-request bounds.
pub fn bounded(router: Router, limits: &Limits) -> Router {
    router
        .layer(axum::middleware::map_response(json_errors))
        // axum's own 2 MB default for extracted bodies is replaced by the listener's limit.
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.idle_timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(shed))
                .load_shed()
                .concurrency_limit(limits.concurrent_requests())
                // The whole request, body included: the body timeout above only bounds the
                // pause between two pieces of a body, so a client trickling a byte a second
                // would hold its slot (and the budget's share) for as long as it liked.
                .timeout(limits.idle_timeout),
        )
}

/// Every error answer as JSON: axum's and tower-http's own refusals (a path or query that does
/// not parse, a body over the limit, a method the route lacks) come as plain text or empty, and
/// an extractor's text may quote what the request held (`Invalid UTF-8 in `id``, a query
/// value). Answers of any other type (ours in JSON, FHIR's OperationOutcome, an HL7 ACK to a
/// provider's message) pass as they are.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let framework = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").starts_with("text/plain"))
        .unwrap_or(true);
    if !(status.is_client_error() || status.is_server_error()) || !framework {
        return res;
    }
    let why = match status {
        StatusCode::BAD_REQUEST => "the request is malformed: its path, query or body",
        StatusCode::NOT_FOUND => "no such endpoint",
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take this method",
        StatusCode::PAYLOAD_TOO_LARGE => "the body is larger than this server takes",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "this endpoint does not take this content type",
        s => s.canonical_reason().unwrap_or("the request was refused"),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": why }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The answer to a request shed because the server is full (503, retry in a second), or one
/// that took longer than the listener allows (408).
async fn shed(e: tower::BoxError) -> Response {
    if e.is::<tower::timeout::error::Elapsed>() {
        return (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": "the request took too long: its body came too slowly, or it could not be answered in time"
            })),
        )
            .into_response();
    }
    busy("the server is busy; try again")
}

/// 503 with `Retry-After: 1` and a JSON reason.
pub fn busy(why: &str) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": why })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Why a request body could not be read under [`bounded`]'s layers: too large (413), too slow
/// (408), or cut off (400).
pub fn body_refusal(e: &axum::Error) -> (StatusCode, &'static str) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than this server takes",
            );
        }
        if err.is::<tower_http::timeout::TimeoutError>() {
            return (StatusCode::REQUEST_TIMEOUT, "the body came too slowly");
        }
        source = err.source();
    }
    (StatusCode::BAD_REQUEST, "the body was cut off")
}
