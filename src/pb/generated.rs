//! The code prost and tonic generate from `proto/` (build.rs), kept apart so that lints apply
//! to ours only. `Delivery` is not generated: it is [`super::delivery::Delivery`].
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("ipex.v1");
