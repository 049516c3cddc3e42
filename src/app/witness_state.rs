//! What the witness keeps ([`Witness`]: its key, the logs it witnesses, the state it cosigned
//! last per log) and what the gateway keeps of its own checkpoints' cosignatures
//! ([`Cosigned`]); [`super::witness`] does the work with them.

use crate::log::cosign::CosignerKey;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::Hash;
use crate::log::note::NoteVerifier;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// A log this gateway witnesses: a peer's, known by its checkpoint key.
pub(super) struct WitnessedLog {
    /// The peer gateway whose log it is.
    pub(super) peer: String,
    /// Its checkpoint verifier.
    pub(super) verifier: NoteVerifier,
}

/// The witness of the peers' logs.
pub struct Witness {
    /// Signs cosignatures.
    pub(super) key: CosignerKey,
    /// The logs witnessed, by origin.
    pub(super) logs: HashMap<String, WitnessedLog>,
    /// The size and root cosigned last per origin, as durable in the log; loaded on first use.
    /// Held across the check and the durable write of a request.
    pub(super) state: tokio::sync::Mutex<HashMap<String, (u64, Hash)>>,
}

/// Why the witness did not cosign: an HTTP status of C2SP tlog-witness and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 403, 404, 409, 422 as the specification says; 503 when the store failed.
    pub status: u16,
    /// What was wrong, for the caller and the log.
    pub reason: String,
    /// For a 409, the size of the checkpoint cosigned last (the body of the answer).
    pub cosigned_size: Option<u64>,
}

impl Refusal {
    pub(super) fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            cosigned_size: None,
        }
    }

    /// The body of the answer: for 409 the cosigned size and a newline (`text/x.tlog.size`),
    /// otherwise the reason.
    pub fn body(&self) -> String {
        match self.cosigned_size {
            Some(size) => format!("{size}\n"),
            None => format!("{}\n", self.reason),
        }
    }
}

/// Reads a witness (cosigning) key file.
pub fn load_witness_key(path: &Path) -> Result<CosignerKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    CosignerKey::from_private_key(text.trim()).map_err(|e| format!("{}: {e}", path.display()))
}

impl Witness {
    /// A witness signing with `key` for the logs of `peers` (their gateway ids and
    /// checkpoint keys).
    pub fn new(
        key: CosignerKey,
        peers: &[crate::ops::config::PeerConfig],
    ) -> Result<Witness, String> {
        let mut logs = HashMap::new();
        for peer in peers {
            let verifier = NoteVerifier::from_verifier_key(&peer.checkpoint_key)
                .map_err(|e| format!("peers {}: checkpoint_key: {e}", peer.id))?;
            logs.insert(
                verifier.name().to_string(),
                WitnessedLog {
                    peer: peer.id.clone(),
                    verifier,
                },
            );
        }
        Ok(Witness {
            key,
            logs,
            state: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The witness's verifier key, for the peers' configuration.
    pub fn verifier_key(&self) -> String {
        self.key.verifier_key()
    }
}

/// This gateway's latest checkpoint with the cosignatures its peers gave it.
#[derive(Default)]
pub struct Cosigned {
    latest: Mutex<Option<(SignedCheckpoint, BTreeMap<String, String>)>>,
}

impl Cosigned {
    /// Keeps `line`, the cosignature `peer` gave `checkpoint`; a newer checkpoint replaces the
    /// older with its cosignatures.
    pub fn add(&self, checkpoint: &SignedCheckpoint, peer: &str, line: String) {
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match latest.as_mut() {
            Some((cp, lines)) if cp.size == checkpoint.size && cp.root == checkpoint.root => {
                lines.insert(peer.to_string(), line);
            }
            Some((cp, _)) if cp.size > checkpoint.size => {}
            _ => {
                *latest = Some((
                    checkpoint.clone(),
                    BTreeMap::from([(peer.to_string(), line)]),
                ));
            }
        }
    }

    /// The newest checkpoint peers cosigned, as a signed note carrying their cosignature
    /// lines after the gateway's own signature, with how many peers cosigned it.
    pub fn note(&self) -> Option<(SignedCheckpoint, usize)> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        latest.as_ref().map(|(cp, lines)| {
            let mut note = cp.note.clone();
            for line in lines.values() {
                note.push_str(line);
            }
            (
                SignedCheckpoint {
                    note,
                    size: cp.size,
                    root: cp.root,
                },
                lines.len(),
            )
        })
    }
}
