//! Checking the exchange log as a participant does, online or from an export: the checkpoint's
//! signature, every leaf hash against the signed root, the participant's own leaves against
//! their data, and consistency with the checkpoint seen last time (kept in a state file), so
//! that a rewritten or forked history is detected.

use super::merkle::{self, Frontier, Hash};
use super::note::{Checkpoint, NoteVerifier};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a verifier remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The log's origin.
    pub origin: String,
    /// The gateway's note verifier key, trusted from the first run on (or given).
    pub verifier_key: String,
    /// Size of the last verified checkpoint.
    pub tree_size: u64,
    /// Its root hash, hex.
    pub root: String,
}

impl State {
    /// Reads the state file; `None` when it does not exist yet.
    pub fn load(path: &Path) -> Result<Option<State>, VerifyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| VerifyError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VerifyError::State(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the state file.
    pub fn save(&self, path: &Path) -> Result<(), VerifyError> {
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        std::fs::write(path, text + "\n")
            .map_err(|e| VerifyError::State(format!("{}: {e}", path.display())))
    }
}

/// Why the log does not verify. Each names the index, size or proof at fault.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint's signature or format.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// The checkpoint is of another log.
    #[error("checkpoint origin {found:?} is not the origin {expected:?} seen before")]
    Origin {
        /// Origin remembered.
        expected: String,
        /// Origin found.
        found: String,
    },
    /// The log is smaller than a checkpoint seen before.
    #[error("the log shrank: checkpoint of size {now}, but size {seen} was seen before")]
    Shrunk {
        /// Size seen before.
        seen: u64,
        /// Size now.
        now: u64,
    },
    /// The leaves do not reproduce a checkpoint seen before: history was rewritten.
    #[error(
        "forked history: at tree size {size} the log now has root {now}, but root {seen} was \
         seen before"
    )]
    Fork {
        /// The earlier tree size.
        size: u64,
        /// Root seen before, hex.
        seen: String,
        /// Root now, hex.
        now: String,
    },
    /// The leaves do not give the checkpoint's root.
    #[error("root mismatch at tree size {size}: the leaves give {computed}, the checkpoint says {signed}")]
    Root {
        /// Tree size.
        size: u64,
        /// Computed root, hex.
        computed: String,
        /// Signed root, hex.
        signed: String,
    },
    /// A leaf's data does not hash to its leaf hash.
    #[error("leaf {0}: its data does not match its leaf hash")]
    LeafData(u64),
    /// Leaves are missing or out of order.
    #[error("leaf {found} came where leaf {expected} was expected")]
    Order {
        /// Index expected.
        expected: u64,
        /// Index found.
        found: u64,
    },
    /// Fewer leaves than the checkpoint commits to.
    #[error("the log has {leaves} leaves but the checkpoint commits to {size}")]
    Short {
        /// Leaves seen.
        leaves: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// An inclusion proof failed.
    #[error("inclusion proof of leaf {index} in tree size {size} fails: {reason}")]
    Inclusion {
        /// Leaf.
        index: u64,
        /// Tree size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// A consistency proof failed.
    #[error("consistency proof from size {first} to {second} fails: {reason}")]
    Consistency {
        /// Older size.
        first: u64,
        /// Newer size.
        second: u64,
        /// Why.
        reason: String,
    },
    /// The state file.
    #[error("state file {0}")]
    State(String),
    /// An export file or a call.
    #[error("{0}")]
    Input(String),
}

/// Verifies a signed checkpoint note with the verifier key.
pub fn open_checkpoint(note: &str, verifier_key: &str) -> Result<Checkpoint, VerifyError> {
    let verifier = NoteVerifier::from_verifier_key(verifier_key)
        .map_err(|e| VerifyError::Checkpoint(format!("verifier key: {e}")))?;
    verifier
        .verify_checkpoint(note)
        .map_err(|e| VerifyError::Checkpoint(e.to_string()))
}

/// Recomputes the tree from leaf hashes fed in order and compares it with a checkpoint and
/// with the state of the previous run.
pub struct LogChecker {
    /// The checkpoint to reach.
    checkpoint: Checkpoint,
    /// The previous run's size and root.
    previous: Option<(u64, Hash)>,
    /// The tree so far.
    frontier: Frontier,
    /// Leaves whose data was checked.
    with_data: u64,
}

impl LogChecker {
    /// Starts checking towards `checkpoint`, remembering `previous`.
    pub fn new(
        checkpoint: Checkpoint,
        previous: Option<&State>,
    ) -> Result<LogChecker, VerifyError> {
        let previous = match previous {
            None => None,
            Some(state) => {
                if state.origin != checkpoint.origin {
                    return Err(VerifyError::Origin {
                        expected: state.origin.clone(),
                        found: checkpoint.origin.clone(),
                    });
                }
                if state.tree_size > checkpoint.size {
                    return Err(VerifyError::Shrunk {
                        seen: state.tree_size,
                        now: checkpoint.size,
                    });
                }
                let mut root = [0u8; 32];
                hex::decode_to_slice(&state.root, &mut root)
                    .map_err(|e| VerifyError::State(format!("root: {e}")))?;
                Some((state.tree_size, root))
            }
        };
        let mut checker = LogChecker {
            checkpoint,
            previous,
            frontier: Frontier::new(),
            with_data: 0,
        };
        checker.check_previous()?;
        Ok(checker)
    }

    /// Compares with the previous run when the tree has reached its size.
    fn check_previous(&mut self) -> Result<(), VerifyError> {
        if let Some((size, root)) = self.previous {
            if size == self.frontier.size() {
                let now = self.frontier.root();
                if now != root {
                    return Err(VerifyError::Fork {
                        size,
                        seen: hex::encode(root),
                        now: hex::encode(now),
                    });
                }
                self.previous = None;
            }
        }
        Ok(())
    }

    /// How many leaves were fed.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The checkpoint being checked.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Feeds leaf `index` with its hash and, when visible, its data.
    pub fn push(
        &mut self,
        index: u64,
        leaf_hash: Hash,
        data: Option<&[u8]>,
    ) -> Result<(), VerifyError> {
        if index != self.frontier.size() {
            return Err(VerifyError::Order {
                expected: self.frontier.size(),
                found: index,
            });
        }
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            if merkle::leaf_hash(data) != leaf_hash {
                return Err(VerifyError::LeafData(index));
            }
            self.with_data += 1;
        }
        self.frontier.push(leaf_hash);
        self.check_previous()
    }

    /// Checks that the leaves fed give the checkpoint's root.
    pub fn finish(self) -> Result<Report, VerifyError> {
        if self.frontier.size() != self.checkpoint.size {
            return Err(VerifyError::Short {
                leaves: self.frontier.size(),
                size: self.checkpoint.size,
            });
        }
        let computed = self.frontier.root();
        if computed != self.checkpoint.root {
            return Err(VerifyError::Root {
                size: self.checkpoint.size,
                computed: hex::encode(computed),
                signed: hex::encode(self.checkpoint.root),
            });
        }
        Ok(Report {
            origin: self.checkpoint.origin.clone(),
            tree_size: self.checkpoint.size,
            root: hex::encode(computed),
            leaves_with_data: self.with_data,
        })
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// Tree size verified.
    pub tree_size: u64,
    /// Root verified, hex.
    pub root: String,
    /// Leaves whose data the verifier could see and checked.
    pub leaves_with_data: u64,
}

impl Report {
    /// The state to remember for the next run.
    pub fn state(&self, verifier_key: &str) -> State {
        State {
            origin: self.origin.clone(),
            verifier_key: verifier_key.to_string(),
            tree_size: self.tree_size,
            root: self.root.clone(),
        }
    }
}

/// Reads 32-byte hashes from bytes fields.
pub fn hashes(items: &[Vec<u8>]) -> Result<Vec<Hash>, VerifyError> {
    items
        .iter()
        .map(|h| {
            h.as_slice()
                .try_into()
                .map_err(|_| VerifyError::Input(format!("a hash of {} bytes", h.len())))
        })
        .collect()
}

/// One line of an export file after the header.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportLeaf {
    /// Leaf index.
    pub index: u64,
    /// Leaf hash, hex.
    pub leaf_hash: String,
    /// Leaf data, base64, when the exporter could see it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
}

/// The first line of an export file.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Format tag.
    pub format: String,
    /// The signed checkpoint note the export ends at.
    pub checkpoint: String,
    /// The gateway's verifier key as the exporter got it.
    pub verifier_key: String,
}

/// The format tag of export files.
pub const EXPORT_FORMAT: &str = "ipex-audit-export/1";
