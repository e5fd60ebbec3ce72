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
