//! Offline operations on the data directory of a stopped gateway, for the `ipex` command
//! line: rebuilding the index from the log (`ipex store reindex`), converting a store of the
//! old layout (`ipex store migrate`), and checking the whole log (`ipex audit verify --full`).
//! Each answers a JSON report or an error that names what is wrong.
//!
//! Uses [`crate::storage`] and [`crate::log`]; it is what lets the client stay clear of the
//! gateway's internals.

use crate::log::note::NoteVerifier;
use crate::storage::{offline, scrub};
use std::path::Path;
use std::sync::atomic::AtomicU64;

/// Rebuilds the index of the store in `dir` from its log.
pub fn reindex(dir: &Path) -> Result<serde_json::Value, String> {
    let started = std::time::Instant::now();
    let records = offline::reindex(dir).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "dataDir": dir.display().to_string(),
        "recordsReplayed": records,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// Converts the store of layout 1 in `from` into a new store in `to`.
pub fn migrate(from: &Path, to: &Path) -> Result<serde_json::Value, String> {
    let done = offline::migrate_v1(from, to).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "from": from.display().to_string(),
        "to": to.display().to_string(),
        "messages": done.messages,
        "leaves": done.leaves,
        "checkpoints": done.checkpoints,
        "cursors": done.cursors,
        "receiptsChecked": done.messages,
    }))
}

/// Checks the whole log of the store in `dir`: every record's checksum, every leaf re-hashed,
/// every checkpoint against the tree (and its signature, given the gateway's verifier key),
/// and the index's tiles against the leaves.
pub fn verify_full(dir: &Path, verifier_key: Option<&str>) -> Result<serde_json::Value, String> {
    let verifier = verifier_key
        .map(|k| NoteVerifier::from_verifier_key(k).map_err(|e| format!("--verifier-key: {e}")))
        .transpose()?;
    let progress = AtomicU64::new(0);
    let report = scrub::check_dir(dir, verifier.as_ref(), &progress).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "verified": true,
        "dataDir": dir.display().to_string(),
        "leaves": report.leaves.to_string(),
        "messages": report.messages.to_string(),
        "checkpoints": report.checkpoints,
        "signaturesVerified": report.signatures_verified,
        "tilesChecked": report.tiles,
        "lastCheckpointSize": report.last_checkpoint.map(|(size, _)| size.to_string()),
        "root": hex::encode(report.root),
    }))
}
