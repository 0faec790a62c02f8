//! Provider API keys, held so they never print.

use std::fmt;
use std::sync::Arc;

/// A provider's API key.
///
/// `Debug` and `Display` print `***`; the key itself is only read by
/// [`ApiKey::expose`], which the provider services call to build the
/// `Authorization` or `x-api-key` header (itself marked sensitive).
///
/// # Example
///
/// ```
/// use understudy_provider::ApiKey;
///
/// let key = ApiKey::new("sk-live-1234");
/// assert_eq!(format!("{key}"), "***");
/// assert_eq!(format!("{key:?}"), "ApiKey(***)");
/// assert_eq!(key.expose(), "sk-live-1234");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(Arc::from(key.into()))
    }

    /// The key itself, for the request header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
