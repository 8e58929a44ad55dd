//! Extractor configuration: how much body, which content type, which JSON shape — and what the
//! client hears when a request breaks one of those rules.
//!
//! The rules (from the contract):
//! - a JSON body must be sent as `application/json` (or `…+json`), else **415**;
//! - it may be at most the configured size (64 KiB by default), else **413** — enforced while
//!   reading, so a huge body is never buffered;
//! - it must be well-formed JSON, else **400** `malformed-json`;
//! - it must match the request type exactly. Request types use `#[serde(deny_unknown_fields)]`, so
//!   a field the endpoint does not accept (`role`, `is_admin`) is a **400** `validation-error`
//!   naming the field — never silently dropped. This is the mass-assignment defence (API3).
//!
//! Query strings and path segments that do not parse become 400 and 404 problems.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use crate::problem::{FieldError, Problem, ProblemError, types};

/// The contract's default JSON body limit.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

/// `JsonConfig` with the size limit and problem-mapping error handler.
#[must_use]
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(|error, _req: &HttpRequest| json_problem(&error).into())
}

/// `PayloadConfig` (raw `Bytes`/`String` bodies) with the same limit.
#[must_use]
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::default().limit(limit)
}

/// `QueryConfig`: an unparseable query string is a 400 validation problem.
#[must_use]
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req: &HttpRequest| {
        let QueryPayloadError::Deserialize(inner) = &error else {
            return ProblemError::status(StatusCode::BAD_REQUEST).into();
        };
        let errors = describe_serde_error(&inner.to_string())
            .into_iter()
            .collect();
        ProblemError::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::VALIDATION,
                "Validation failed",
                "A query parameter is invalid.",
            )
            .with_errors(errors),
        )
        .into()
    })
}

/// `PathConfig`: a path segment of the wrong shape (an id that is not a UUID) is a 404: there is no
/// resource at that address, and the answer does not differ from an unknown id.
#[must_use]
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_error: PathError, _req: &HttpRequest| {
        ProblemError::status(StatusCode::NOT_FOUND).into()
    })
}

/// Maps a JSON body error to its problem.
#[must_use]
pub fn json_problem(error: &JsonPayloadError) -> ProblemError {
    match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ProblemError::new(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                types::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "The request body is larger than this endpoint accepts.",
            ))
        }
        JsonPayloadError::ContentType => ProblemError::new(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            types::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "Send the body as application/json.",
        )),
        JsonPayloadError::Deserialize(inner) if inner.is_data() => ProblemError::new(
            Problem::new(
                StatusCode::BAD_REQUEST,
                types::VALIDATION,
                "Validation failed",
                "The request body does not match the expected schema.",
            )
            .with_errors(
                describe_serde_error(&inner.to_string())
                    .into_iter()
                    .collect(),
            ),
        ),
        JsonPayloadError::Deserialize(_) => ProblemError::new(Problem::new(
            StatusCode::BAD_REQUEST,
            types::MALFORMED_JSON,
            "Malformed JSON",
            "The request body is not well-formed JSON.",
        )),
        _ => ProblemError::status(StatusCode::BAD_REQUEST),
    }
}

/// Turns serde's message into a field error where it names a field. serde_derive's wording for
/// these two cases ("unknown field `x`, expected …", "missing field `x`") has been stable since 1.0.
/// Other messages may quote the offending *value* — possibly a password sent with the wrong type —
/// so they are never passed on; the client gets a generic code instead.
fn describe_serde_error(message: &str) -> Option<FieldError> {
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
            .filter(|name| {
                name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    if let Some(field) = quoted("unknown field `") {
        return Some(FieldError::new(
            field,
            "unknown_field",
            "This field is not accepted here.",
        ));
    }
    if let Some(field) = quoted("missing field `") {
        return Some(FieldError::new(
            field,
            "required",
            "This field is required.",
        ));
    }
    Some(FieldError::new(
        "body",
        "invalid",
        "A value has the wrong type or format.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        age: u8,
    }

    fn serde_message(json: &str) -> String {
        serde_json::from_str::<Sample>(json)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_fields_are_named() {
        let error =
            describe_serde_error(&serde_message(r#"{"name":"a","age":1,"role":"admin"}"#)).unwrap();
        assert_eq!(error.field, "role");
        assert_eq!(error.code, "unknown_field");
    }

    #[test]
    fn missing_fields_are_named() {
        let error = describe_serde_error(&serde_message(r#"{"name":"a"}"#)).unwrap();
        assert_eq!(
            (error.field.as_ref(), error.code.as_ref()),
            ("age", "required")
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_not_echoed() {
        let message = serde_message(r#"{"name":"a","age":"hunter2-secret"}"#);
        assert!(
            message.contains("hunter2-secret"),
            "serde does quote values: {message}"
        );
        let error = describe_serde_error(&message).unwrap();
        let text = format!("{error:?}");
        assert!(!text.contains("hunter2"));
        assert_eq!(error.code, "invalid");
    }

    #[test]
    fn odd_field_names_are_not_reflected() {
        let error =
            describe_serde_error("unknown field `<img src=x>`, expected one of `a`").unwrap();
        assert_eq!(error.field, "body");
    }
}
