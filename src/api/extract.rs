//! The API's extractors: axum's [`Json`], [`Query`] and [`Path`], whose
//! rejections (a body that is not JSON or lacks a field, a wrong content
//! type, a body over the limit, a bad query string or path parameter) answer
//! with the documented error shape ([`super::wire::ApiErrorBody`]) instead of
//! axum's plain text. With [`not_found`] and [`method_not_allowed`] as the
//! router's fallbacks, every error the API returns is JSON.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::server::ApiError;
use super::wire::ErrorCode;

/// Largest request body the API reads (every request it takes is a few
/// hundred bytes); a larger one is answered 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body (`Content-Type: application/json`).
#[derive(Debug)]
pub struct Json<T>(pub T);

/// A query string.
#[derive(Debug)]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let code = code_for(rejection.status());
    let hint = match code {
        ErrorCode::UnsupportedMediaType => "; send the body as Content-Type: application/json",
        ErrorCode::PayloadTooLarge => "; the API takes bodies of at most 64 KiB",
        _ => "; the API's request bodies are documented in the README (API)",
    };
    ApiError::new(code, format!("{}{hint}", said(&rejection.body_text())))
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        code_for(rejection.status()),
        format!("bad query string: {}", said(&rejection.body_text())),
    )
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    let status = rejection.status();
    // A path parameter axum could not read is the client's mistake, not ours.
    let code = if status.is_server_error() {
        ErrorCode::Internal
    } else {
        ErrorCode::BadRequest
    };
    ApiError::new(
        code,
        format!("bad path parameter: {}", said(&rejection.body_text())),
    )
}

/// The code of a rejection's status: 413 and 415 keep theirs, every other
/// client error (400, 422) is `bad_request`.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        s if s.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    }
}

/// A rejection's text, which may quote what the client sent: made printable
/// and capped.
fn said(text: &str) -> String {
    crate::label::clean_text(text)
}

/// The router's fallback: no such route.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "no route {}; the API's routes are under /v1 (see the README's API section)",
            crate::label::clean_text(uri.path())
        ),
    )
}

/// The fallback for a route asked with a method it does not take.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "this route does not take {}; see the README's API section",
            crate::label::clean_text(method.as_str())
        ),
    )
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    use super::*;
    use crate::api::wire::DeployRequest;

    fn router() -> Router {
        Router::new()
            .route(
                "/body",
                post(|Json(req): Json<DeployRequest>| async move { req.version }),
            )
            .route(
                "/id/{id}",
                get(|Path(id): Path<i64>| async move { id.to_string() }),
            )
            .route(
                "/query",
                get(
                    |Query(q): Query<std::collections::HashMap<String, u32>>| async move {
                        q.len().to_string()
                    },
                ),
            )
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    }

    async fn ask(request: axum::http::Request<Body>) -> (u16, serde_json::Value) {
        let response = router().oneshot(request).await.expect("an answer");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, body)
    }

    fn post_body(content_type: Option<&str>, body: impl Into<Body>) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::post("/body");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.body(body.into()).expect("request")
    }

    fn code(answer: &(u16, serde_json::Value)) -> (u16, &str) {
        (
            answer.0,
            answer.1["error"].as_str().unwrap_or("no error field"),
        )
    }

    #[tokio::test]
    async fn every_rejection_is_the_json_error_shape_with_its_code() {
        let json = Some("application/json");
        let cases = [
            (post_body(json, "{not json"), (400, "bad_request")),
            (
                post_body(json, r#"{"environment":"x"}"#),
                (400, "bad_request"),
            ),
            (
                post_body(None, r#"{"version":"v1","requested_by":"x"}"#),
                (415, "unsupported_media_type"),
            ),
            (
                post_body(Some("text/plain"), "{}"),
                (415, "unsupported_media_type"),
            ),
            (
                post_body(json, "x".repeat(MAX_BODY_BYTES + 1)),
                (413, "payload_too_large"),
            ),
            (
                axum::http::Request::get("/id/abc")
                    .body(Body::empty())
                    .expect("request"),
                (400, "bad_request"),
            ),
            (
                axum::http::Request::get("/query?n=many")
                    .body(Body::empty())
                    .expect("request"),
                (400, "bad_request"),
            ),
            (
                axum::http::Request::get("/nowhere")
                    .body(Body::empty())
                    .expect("request"),
                (404, "not_found"),
            ),
            (
                axum::http::Request::delete("/body")
                    .body(Body::empty())
                    .expect("request"),
                (405, "method_not_allowed"),
            ),
        ];
        for (request, expected) in cases {
            let what = format!("{} {}", request.method(), request.uri());
            let answer = ask(request).await;
            assert_eq!(code(&answer), expected, "{what}: {}", answer.1);
            let message = answer.1["message"].as_str().unwrap_or("");
            assert!(!message.is_empty(), "{what}");
            assert_eq!(answer.1.as_object().map(|o| o.len()), Some(2), "{what}");
        }
    }

    #[tokio::test]
    async fn a_rejection_never_echoes_a_control_character() {
        // axum quotes a path parameter it cannot parse, decoded.
        let request = axum::http::Request::get("/id/%1B%5B31m%0Aforged")
            .body(Body::empty())
            .expect("request");
        let answer = ask(request).await;
        assert_eq!(code(&answer), (400, "bad_request"));
        let message = answer.1["message"].as_str().unwrap_or("");
        assert!(message.contains("?forged"), "{message:?}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
}
