//! The gateway as a C2SP tlog-witness of its peers' logs, and its own checkpoints as its peers
//! cosigned them.
//!
//! A peer asks, with `add-checkpoint`, that a checkpoint of its log be cosigned: the body is
//! an old size, a consistency proof from it, and the signed checkpoint. The witness checks
//! the log's signature, that the old size is the size it cosigned last for that log, and the
//! proof; it then records the checkpoint durably in its own exchange log and answers a
//! `cosignature/v1` line (C2SP tlog-cosignature, Ed25519). Checking the old size and
//! recording the new checkpoint happen under one lock, so two requests can never roll the
//! state back. A checkpoint that is not consistent with the one cosigned last — same size
//! with another root, or a proof that does not verify — is refused and kept as evidence: a
//! leaf of this gateway's log, a metric, and an error in its log.
//!
//! The other side, [`Cosigned`], keeps the cosignatures peers gave this gateway's latest
//! checkpoint, which `GetCheckpoint` serves with it.

use super::witness_state::Refusal;
use super::Gateway;
use crate::log::cosign::AddCheckpoint;
use crate::log::merkle::{self, Hash};
use crate::log::note::{Checkpoint, NoteVerifier};
use crate::pb;

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Gateway {
    /// `add-checkpoint` of C2SP tlog-witness, asked by peer gateway `caller` (the gateway its
    /// certificate names, `None` for a participant): the cosignature lines, or why not.
    pub async fn add_checkpoint(
        &self,
        caller: Option<&str>,
        body: &[u8],
    ) -> Result<String, Refusal> {
        let peer = caller.unwrap_or("");
        let answer = self.witness_checkpoint(caller, body).await;
        let status = answer.as_ref().map_or_else(|r| r.status, |_| 200);
        self.metrics
            .witness_request(if peer.is_empty() { "-" } else { peer }, status);
        answer
    }

    async fn witness_checkpoint(
        &self,
        caller: Option<&str>,
        body: &[u8],
    ) -> Result<String, Refusal> {
        let witness = self
            .witness
            .as_ref()
            .ok_or_else(|| Refusal::new(404, "this gateway witnesses no logs: it has no peers"))?;
        let Some(peer) = caller.filter(|id| self.config().peers.iter().any(|p| p.id == *id)) else {
            return Err(Refusal::new(
                403,
                "only peer gateways, with their gateway certificates, may ask this witness",
            ));
        };
        let body = std::str::from_utf8(body)
            .map_err(|_| Refusal::new(400, "the request body is not UTF-8"))?;
        let request = AddCheckpoint::parse(body).map_err(|e| Refusal::new(400, e.to_string()))?;
        let shown = request
            .checkpoint()
            .map_err(|e| Refusal::new(400, e.to_string()))?;
        let log = witness.logs.get(&shown.origin).ok_or_else(|| {
            Refusal::new(
                404,
                format!("this witness does not know the log {:?}", shown.origin),
            )
        })?;
        let checkpoint = log
            .verifier
            .verify_checkpoint(&request.checkpoint_note)
            .map_err(|e| Refusal::new(403, format!("not signed by the log's key: {e}")))?;
        if request.old_size > checkpoint.size {
            return Err(Refusal::new(
                400,
                "the old size is larger than the checkpoint's",
            ));
        }
        let mut state = witness.state.lock().await;
        let (cosigned_size, cosigned_root) = match state.get(&checkpoint.origin) {
            Some(&known) => known,
            None => {
                let known = self.cosigned_before(&checkpoint.origin, &log.verifier)?;
                state.insert(checkpoint.origin.clone(), known);
                known
            }
        };
        if request.old_size != cosigned_size {
            return Err(Refusal {
                status: 409,
                reason: format!(
                    "the old size {} is not the size cosigned last, {cosigned_size}",
                    request.old_size
                ),
                cosigned_size: Some(cosigned_size),
            });
        }
        if checkpoint.size != cosigned_size {
            // A proof that fails is refused, but proves nothing against the log: anyone may
            // send a genuine checkpoint with a wrong proof. Counted by status, not recorded.
            if let Err(e) = merkle::verify_consistency(
                cosigned_size,
                checkpoint.size,
                &cosigned_root,
                &checkpoint.root,
                &request.proof,
            ) {
                tracing::warn!(peer, origin = %checkpoint.origin, size = checkpoint.size, cosigned_size, %e, "witness: a consistency proof does not verify; not cosigned");
                return Err(Refusal::new(
                    422,
                    format!("the consistency proof does not verify: {e}"),
                ));
            }
        } else if checkpoint.root != cosigned_root {
            // Two checkpoints of one size with different roots, both signed by the log: a
            // fork, and the evidence of it.
            let (status, reason) = (
                409,
                format!(
                    "a checkpoint of size {cosigned_size} with another root than the one cosigned"
                ),
            );
            self.record_inconsistent(
                pb::WitnessRefused {
                    peer: peer.to_string(),
                    origin: checkpoint.origin.clone(),
                    old_size: request.old_size,
                    size: checkpoint.size,
                    root_hash: hex::encode(checkpoint.root),
                    cosigned_size,
                    cosigned_root_hash: hex::encode(cosigned_root),
                    status: u32::from(status),
                    reason: reason.clone(),
                    checkpoint: request.checkpoint_note.clone(),
                },
                &log.peer,
            )
            .await;
            return Err(Refusal {
                status,
                reason,
                cosigned_size: Some(cosigned_size),
            });
        }
        if (checkpoint.size, checkpoint.root) != (cosigned_size, cosigned_root) {
            self.store
                .set_witnessed(&checkpoint.origin, &request.checkpoint_note)
                .await
                .map_err(|e| Refusal::new(503, format!("cannot record the checkpoint: {e}")))?;
            state.insert(
                checkpoint.origin.clone(),
                (checkpoint.size, checkpoint.root),
            );
        }
        drop(state);
        let text = checkpoint.to_text();
        witness
            .key
            .cosign(&text, unix_seconds())
            .map_err(|e| Refusal::new(400, e.to_string()))
    }

    /// The size and root cosigned last for `origin`, from the store; the empty tree when none.
    fn cosigned_before(
        &self,
        origin: &str,
        verifier: &NoteVerifier,
    ) -> Result<(u64, Hash), Refusal> {
        let note = self
            .store
            .witnessed(origin)
            .map_err(|e| Refusal::new(503, format!("cannot read the witness state: {e}")))?;
        let Some(note) = note else {
            return Ok((0, merkle::empty_root()));
        };
        // Recorded only after this check passed; a key rotated since is still the log's.
        let checkpoint = verifier
            .verify_checkpoint(&note)
            .or_else(|_| Checkpoint::parse(note.find("\n\n").map_or("", |at| &note[..=at])))
            .map_err(|e| {
                Refusal::new(
                    503,
                    format!("the witness state of {origin:?} is unreadable: {e}"),
                )
            })?;
        Ok((checkpoint.size, checkpoint.root))
    }

    /// Keeps the evidence of an inconsistent checkpoint: a leaf, a metric, an error line.
    async fn record_inconsistent(&self, refused: pb::WitnessRefused, log_peer: &str) {
        tracing::error!(
            peer = %refused.peer,
            log_of = %log_peer,
            origin = %refused.origin,
            size = refused.size,
            root = %refused.root_hash,
            cosigned_size = refused.cosigned_size,
            cosigned_root = %refused.cosigned_root_hash,
            status = refused.status,
            reason = %refused.reason,
            "witness: a peer's log showed a checkpoint inconsistent with the one cosigned; refused and recorded"
        );
        self.metrics.witness_inconsistent(&refused.origin);
        if let Err(error) = self
            .store
            .record(vec![super::events::witness_refused(refused)])
            .await
        {
            tracing::error!(%error, "witness: cannot record the inconsistent checkpoint");
        }
    }
}
