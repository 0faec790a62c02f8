//! The `understudy` gateway: an OpenAI-compatible endpoint built only from
//! the Understudy layers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod body_timeout;
pub mod coalesce;
pub mod config;
pub mod conn;
pub mod demo;
pub mod drain;
pub mod edge;
pub mod gateway;
pub mod live;
pub mod reload;
pub mod router;
pub mod serve;
pub mod shed;
pub mod stack;
pub mod status;
mod workers;
