//! Running the gateway: its configuration ([`config`]), its Prometheus metrics and their
//! listener ([`metrics`]), and the watch that reloads its files ([`reload`]).
//!
//! Uses [`crate::domain`] only: what the metrics show and what a reload does are passed in.

pub mod config;
pub mod metrics;
pub mod reload;
