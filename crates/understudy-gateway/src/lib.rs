//! The `understudy` gateway: an OpenAI-compatible endpoint built only from
//! the Understudy layers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod gateway;
pub mod router;
pub mod serve;
pub mod stack;
