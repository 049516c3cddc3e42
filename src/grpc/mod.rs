//! The gRPC face of the gateway: the tonic services of `ipex.v1` ([`services`]), the one
//! mapping of errors to statuses ([`status`]), the refusal of requests that do not decode
//! ([`undecodable`]), and health and reflection ([`health`]).
//!
//! Uses [`crate::app`], [`crate::auth`], [`crate::ops`] and [`crate::pb`].

pub mod health;
pub mod services;
pub mod status;
pub mod undecodable;
