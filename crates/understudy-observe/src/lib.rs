//! understudy-observe.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
