//! understudy-provider.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
