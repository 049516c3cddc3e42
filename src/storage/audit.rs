//! The start-up check of the exchange log: the stored leaves and tree nodes are recomputed
//! and compared with each other and with the last checkpoint the gateway signed, so a store
//! altered behind the gateway's back (or damaged) refuses to serve. Also the tree's hashes as
//! the proofs of [`crate::log::merkle`] read them from the engine.

use super::engine::Engine;
use super::error::{AuditError, StoreError};
use super::keys;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Frontier, Hash, NodeSource};
use crate::log::note::{Checkpoint, NoteVerifier};

/// Perfect-subtree hashes read from the engine.
pub struct EngineNodes<'a>(pub &'a dyn Engine);

impl NodeSource for EngineNodes<'_> {
    type Error = StoreError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        let key = keys::node(level, index);
        let value = self.0.get(&key)?.ok_or_else(|| StoreError::Corrupt {
            key: hex::encode(&key),
            reason: "tree node missing".into(),
        })?;
        value
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                key: hex::encode(&key),
                reason: format!("tree node of {} bytes", value.len()),
            })
    }
}

/// The latest stored checkpoint.
pub fn latest_checkpoint(kv: &dyn Engine) -> Result<Option<SignedCheckpoint>, AuditError> {
    let Some((key, value)) = kv.last_in(keys::CHECKPOINT)? else {
        return Ok(None);
    };
    let note = String::from_utf8(value).map_err(|_| StoreError::Corrupt {
        key: hex::encode(&key),
        reason: "checkpoint is not UTF-8".into(),
    })?;
    let body = note.split("\n\n").next().unwrap_or_default();
    let checkpoint = Checkpoint::parse(&format!("{body}\n")).map_err(|e| StoreError::Corrupt {
        key: hex::encode(&key),
        reason: e.to_string(),
    })?;
    Ok(Some(SignedCheckpoint {
        note,
        size: checkpoint.size,
        root: checkpoint.root,
    }))
}

/// The start-up check: recomputes every leaf hash and tree node from the stored leaf data,
/// compares them with the stored nodes, and the root at the last checkpoint's size with that
/// checkpoint, whose signature must verify with `verifier`. Returns the tree's frontier (for
/// appending) and the last checkpoint.
pub fn check_store(
    kv: &dyn Engine,
    verifier: &NoteVerifier,
) -> Result<(Frontier, Option<SignedCheckpoint>), AuditError> {
    let last = latest_checkpoint(kv)?;
    if let Some(cp) = &last {
        verifier
            .verify_checkpoint(&cp.note)
            .map_err(|e| AuditError::CheckpointSignature {
                size: cp.size,
                reason: e.to_string(),
            })?;
    }
    let mut frontier = Frontier::new();
    let mut root_at_checkpoint =
        (last.as_ref().map(|c| c.size) == Some(0)).then(merkle::empty_root);
    for entry in kv.range(keys::LEAF, &keys::leaf(u64::MAX), false) {
        let (key, data) = entry?;
        let index = u64::from_be_bytes(key[keys::LEAF.len()..].try_into().map_err(|_| {
            StoreError::Corrupt {
                key: hex::encode(&key),
                reason: "leaf key".into(),
            }
        })?);
        if index != frontier.size() {
            return Err(AuditError::MissingLeaf(frontier.size()));
        }
        for (level, node_index, hash) in frontier.push(merkle::leaf_hash(&data)) {
            let stored = EngineNodes(kv).node(level, node_index)?;
            if stored != hash {
                return Err(if level == 0 {
                    AuditError::LeafMismatch(node_index)
                } else {
                    AuditError::NodeMismatch {
                        level,
                        index: node_index,
                    }
                });
            }
        }
        if last.as_ref().map(|c| c.size) == Some(frontier.size()) {
            root_at_checkpoint = Some(frontier.root());
        }
    }
    if let Some(cp) = &last {
        let Some(computed) = root_at_checkpoint else {
            return Err(AuditError::Truncated {
                leaves: frontier.size(),
                checkpoint: cp.size,
            });
        };
        if computed != cp.root {
            return Err(AuditError::CheckpointMismatch {
                size: cp.size,
                computed: hex::encode(computed),
                signed: hex::encode(cp.root),
            });
        }
    }
    Ok((frontier, last))
}
