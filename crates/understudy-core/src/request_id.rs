//! The `x-request-id` header: which values are kept.
//!
//! A request id travels into logs, spans and every upstream attempt, so a
//! caller's value is kept only when it is short and plain: at most
//! [`MAX_REQUEST_ID_BYTES`] of visible ASCII.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request id header, `x-request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id kept, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Is this a request id worth keeping: 1 to [`MAX_REQUEST_ID_BYTES`] bytes
/// of visible ASCII?
///
/// ```
/// use http::HeaderValue;
/// use understudy_core::request_id::is_well_formed;
///
/// assert!(is_well_formed(&HeaderValue::from_static("req-42")));
/// assert!(!is_well_formed(&HeaderValue::from_static("two words")));
/// assert!(!is_well_formed(&HeaderValue::from_str(&"x".repeat(129)).unwrap()));
/// ```
pub fn is_well_formed(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_BYTES
        && bytes.iter().all(u8::is_ascii_graphic)
}

/// The request's id, when it has exactly one and it is well formed.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(&REQUEST_ID).iter();
    let value = values.next()?;
    if values.next().is_some() || !is_well_formed(value) {
        return None;
    }
    value.to_str().ok()
}
