//! The exchange log's pure parts: RFC 9162 hashing, the tree's right edge and proofs
//! ([`merkle`]), C2SP signed notes and checkpoints ([`note`]), who may see a leaf's data
//! ([`leaf`]), and the offline verification of a whole log ([`verify`]).
//!
//! Uses only [`crate::pb`]: no tokio, no sled, so the CLI and a partner's own verifier can use
//! it alone.

pub mod leaf;
pub mod merkle;
pub mod note;
pub mod verify;
