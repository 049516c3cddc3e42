//! The exchange log's pure parts: RFC 9162 hashing, the tree's right edge and proofs
//! ([`merkle`]), C2SP signed notes and checkpoints ([`note`]), witness cosignatures and
//! the witness's `add-checkpoint` request body ([`cosign`]), who may see a leaf's data
//! ([`leaf`]), the records of the log and their framing on disk ([`record`]), the tree's
//! hashes as C2SP tiles ([`tiles`]), the offline verification of a whole log ([`verify`]),
//! and takedown-times reports: their figures and their offline check ([`report`]).
//!
//! Uses only [`crate::pb`]: no tokio, no sled, so the CLI and a partner's own verifier can use
//! it alone.

pub mod cosign;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod record;
pub mod report;
pub mod tiles;
pub mod verify;
