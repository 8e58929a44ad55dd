//! What every listing shares: page size, the opaque keyset cursor, and the search text — parsed the
//! same way for documents, users and whatever lists next, with every bad parameter reported.

use uuid::Uuid;

use crate::document::Cursor;
use crate::user::FieldViolation;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;
/// Longest search string, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// Encodes a cursor: `c1.<unix nanoseconds>.<id>`. Clients treat it as opaque; the version prefix
/// lets the format change without breaking old links silently.
#[must_use]
pub fn encode_cursor(cursor: &Cursor) -> String {
    format!(
        "c1.{}.{}",
        cursor.created_at.unix_timestamp_nanos(),
        cursor.id.simple()
    )
}

/// Decodes a cursor.
///
/// # Errors
/// A violation on `cursor` for anything [`encode_cursor`] did not produce.
pub fn decode_cursor(raw: &str) -> Result<Cursor, FieldViolation> {
    let invalid = || FieldViolation::new("cursor", "invalid", "The cursor is not valid.");
    let mut parts = raw.split('.');
    let (Some("c1"), Some(nanos), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
    let created_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
    let id = Uuid::try_parse(id).map_err(|_| invalid())?;
    let cursor = Cursor { created_at, id };
    // Only the one spelling `encode_cursor` writes: `+5`, `005`, `-0` or a hyphenated, braced or
    // upper-case id would decode to the same position, but a cursor is an opaque token, and
    // accepting many spellings of one makes it a place for smuggled data and cache misses.
    if encode_cursor(&cursor) != raw {
        return Err(invalid());
    }
    Ok(cursor)
}

/// The page size (default [`DEFAULT_LIMIT`]); a violation on `limit` outside 1..=[`MAX_LIMIT`].
pub(crate) fn limit(raw: Option<u32>, violations: &mut Vec<FieldViolation>) -> u32 {
    let limit = raw.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        violations.push(FieldViolation::new(
            "limit",
            "out_of_range",
            format!("limit is from 1 to {MAX_LIMIT}."),
        ));
    }
    limit
}

/// The decoded cursor, if one was sent; a violation on `cursor` when it does not decode.
pub(crate) fn cursor(raw: Option<&str>, violations: &mut Vec<FieldViolation>) -> Option<Cursor> {
    raw.and_then(|raw| decode_cursor(raw).map_err(|v| violations.push(v)).ok())
}

/// The trimmed search text (`None` when empty); a violation on `q` when it is too long or holds
/// control characters (NUL cannot even be stored in PostgreSQL text).
pub(crate) fn search(raw: Option<&str>, violations: &mut Vec<FieldViolation>) -> Option<String> {
    let q = raw.map(str::trim).filter(|q| !q.is_empty())?;
    if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        violations.push(FieldViolation::new(
            "q",
            "invalid",
            format!("q is at most {MAX_QUERY_CHARS} characters, without control characters."),
        ));
        return None;
    }
    Some(q.to_owned())
}
