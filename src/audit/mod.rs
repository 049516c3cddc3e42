//! The exchange log: every event — a message accepted, placed in an inbox, read, answered, or
//! a refused call — is a leaf of one append-only Merkle tree hashed as in RFC 9162, and the
//! gateway signs checkpoints of it (C2SP tlog-checkpoint in a C2SP signed note). Any party
//! can then prove what went through the gateway, and detect a rewrite of history, including
//! one by the gateway's operator.
//!
//! Leaves and tree nodes are written by the store's committer in the same atomic batch and
//! flush as the envelope they describe ([`crate::store`]), so an acknowledged envelope always
//! has its leaves. This module holds what is independent of the committer: the tree and note
//! formats ([`merkle`], [`note`]), the key layout, proofs over the store, the start-up check,
//! the signing key, and who may see a leaf's data.
//!
//! Key layout (numbers big-endian):
//! - `l/<index:u64>` → the leaf data (an encoded [`pb::AuditLeaf`]);
//! - `n/<level:u8><index:u64>` → the hash of a perfect subtree ([`merkle`]'s storage model);
//! - `c/<size:u64>` → the signed checkpoint note for that tree size.

pub mod merkle;
pub mod note;
pub mod verify;

use crate::pb;
use crate::store::{Kv, StoreError};
use merkle::{Frontier, Hash, NodeSource};
use note::{Checkpoint, NoteSigner, NoteVerifier};
use prost::Message;
use std::path::Path;

/// Keys of the audit log in the store.
pub(crate) mod keys {
    pub const LEAF: &[u8] = b"l/";
    pub const NODE: &[u8] = b"n/";
    pub const CHECKPOINT: &[u8] = b"c/";

    pub fn leaf(index: u64) -> Vec<u8> {
        [LEAF, &index.to_be_bytes()].concat()
    }

    pub fn node(level: u8, index: u64) -> Vec<u8> {
        [NODE, &[level], &index.to_be_bytes()].concat()
    }

    pub fn checkpoint(size: u64) -> Vec<u8> {
        [CHECKPOINT, &size.to_be_bytes()].concat()
    }
}

/// A checkpoint as signed and stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed note text.
    pub note: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Audit failures: a store that does not match its signed history, or unreadable keys.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A leaf is missing from the store.
    #[error("audit log damaged: leaf {0} is missing")]
    MissingLeaf(u64),
    /// A leaf's data does not hash to the stored leaf hash.
    #[error("audit log damaged: the data of leaf {0} does not match its stored hash")]
    LeafMismatch(u64),
    /// A stored tree node differs from the one recomputed from the leaves.
    #[error(
        "audit log damaged: tree node (level {level}, index {index}) does not match the leaves"
    )]
    NodeMismatch {
        /// Level of the node.
        level: u8,
        /// Index of the node.
        index: u64,
    },
    /// The root recomputed from the leaves differs from the signed checkpoint.
    #[error(
        "audit log does not match its last signed checkpoint: at tree size {size} the leaves \
         give root {computed}, the checkpoint says {signed}"
    )]
    CheckpointMismatch {
        /// Tree size of the checkpoint.
        size: u64,
        /// Root recomputed from the leaves, hex.
        computed: String,
        /// Root of the checkpoint, hex.
        signed: String,
    },
    /// The log holds fewer leaves than its last checkpoint.
    #[error("audit log truncated: {leaves} leaves, but checkpoint {checkpoint} was signed")]
    Truncated {
        /// Leaves found.
        leaves: u64,
        /// Size of the last checkpoint.
        checkpoint: u64,
    },
    /// The stored checkpoint does not verify with the gateway's key.
    #[error("stored checkpoint of size {size} does not verify with the gateway's key: {reason}")]
    CheckpointSignature {
        /// Its size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The signing key could not be read or created.
    #[error("audit signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Perfect-subtree hashes read from the store.
pub struct KvNodes<'a>(pub &'a Kv);

impl NodeSource for KvNodes<'_> {
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

/// The participants who may see a leaf's data: its actors and the recipients it names.
pub fn parties(leaf: &pb::AuditLeaf) -> Vec<&str> {
    use pb::audit_leaf::Event;
    match &leaf.event {
        Some(Event::Accepted(e)) => std::iter::once(e.sender.as_str())
            .chain(e.recipients.iter().map(String::as_str))
            .collect(),
        Some(Event::Delivered(e)) => vec![e.recipient.as_str(), e.sender.as_str()],
        Some(Event::Read(e)) => vec![e.reader.as_str()],
        Some(Event::Answered(e)) => vec![e.sender.as_str(), e.answered_sender.as_str()],
        Some(Event::Acked(e)) => vec![e.participant.as_str()],
        Some(Event::Refused(e)) if !e.participant.is_empty() => vec![e.participant.as_str()],
        Some(Event::Refused(_)) | None => vec![],
    }
}

/// Is `participant` a party to the leaf encoded in `data`?
pub fn is_party(data: &[u8], participant: &str) -> bool {
    pb::AuditLeaf::decode(data)
        .map(|leaf| parties(&leaf).contains(&participant))
        .unwrap_or(false)
}

/// The latest stored checkpoint.
pub fn latest_checkpoint(kv: &Kv) -> Result<Option<SignedCheckpoint>, AuditError> {
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
    kv: &Kv,
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
    for entry in kv.range(keys::LEAF, &keys::leaf(u64::MAX)) {
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
            let stored = KvNodes(kv).node(level, node_index)?;
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

/// Loads the checkpoint signing key (a note `PRIVATE+KEY+…` line) from `path`; with
/// `create`, generates one named `name` if the file is missing.
pub fn load_signing_key(path: &Path, name: &str, create: bool) -> Result<NoteSigner, AuditError> {
    let err = |reason: String| AuditError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => NoteSigner::from_private_key(text.trim()).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let signer = NoteSigner::generate(name).map_err(|e| err(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            crate::pki::write_private(path, &format!("{}\n", signer.private_key()))
                .map_err(|e| err(e.to_string()))?;
            Ok(signer)
        }
        Err(e) => Err(err(e.to_string())),
    }
}
