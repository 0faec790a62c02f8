//! understudy-fallback.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
