//! understudy-mock.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
