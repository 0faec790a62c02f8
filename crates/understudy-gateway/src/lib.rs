//! The `understudy` gateway: an OpenAI-compatible endpoint built only from
//! the Understudy layers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod router;
