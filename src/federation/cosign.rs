//! Asks the peers to cosign this gateway's checkpoints (C2SP tlog-witness, as the log).
//!
//! Every `federation.cosign_interval_ms`, each peer with a `witness_key` that has not yet
//! cosigned the latest checkpoint gets an `add-checkpoint` request: the size it cosigned last
//! (0 before the first answer: a 409 then says the size it holds), the consistency proof from
//! it, and the signed checkpoint. A valid cosignature is kept with the checkpoint
//! ([`crate::app::witness_state::Cosigned`]) and served by `GetCheckpoint`. Peers are asked
//! concurrently and each request has a deadline, so a peer that is down delays nobody, and
//! what failed is tried again at the next interval.

use super::peers::Peer;
use crate::app::Gateway;
use crate::log::cosign::{AddCheckpoint, CosignatureVerifier};
use crate::log::leaf::SignedCheckpoint;
use std::sync::Arc;
use std::time::Duration;

/// A peer that cosigns this gateway's checkpoints.
pub struct Cosigner {
    /// The connection.
    pub peer: Peer,
    /// Its witness key.
    pub verifier: CosignatureVerifier,
    /// The size of the checkpoint it cosigned last, as far as this gateway knows.
    known_size: Option<u64>,
    /// The checkpoint it cosigned last: (size, root).
    cosigned: Option<(u64, [u8; 32])>,
    /// Whether the last request failed, so that a peer that stays down is reported once.
    failing: bool,
}

impl Cosigner {
    /// A peer whose witness key is `verifier`.
    pub fn new(peer: Peer, verifier: CosignatureVerifier) -> Cosigner {
        Cosigner {
            peer,
            verifier,
            known_size: None,
            cosigned: None,
            failing: false,
        }
    }
}

/// Asks the cosigners every `interval` until the task is dropped.
pub async fn run(gateway: Arc<Gateway>, mut cosigners: Vec<Cosigner>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(latest) = gateway.store.latest_checkpoint() else {
            continue;
        };
        let latest = latest.as_ref().clone();
        let asks = cosigners
            .iter_mut()
            .filter(|c| c.cosigned != Some((latest.size, latest.root)))
            .map(|c| ask(&gateway, c, &latest));
        futures::future::join_all(asks).await;
    }
}

/// Asks one peer to cosign `checkpoint`; after a 409, once more with the size it holds.
async fn ask(gateway: &Gateway, cosigner: &mut Cosigner, checkpoint: &SignedCheckpoint) {
    for _ in 0..2 {
        let old = cosigner.known_size.unwrap_or(0);
        let result = if old > checkpoint.size {
            Err(format!(
                "the peer cosigned size {old}, beyond this gateway's checkpoint of size {}",
                checkpoint.size
            ))
        } else {
            request(gateway, cosigner, checkpoint, old).await
        };
        match result {
            Ok(Outcome::Cosigned(line)) => {
                gateway.cosigned.add(checkpoint, &cosigner.peer.id, line);
                cosigner.known_size = Some(checkpoint.size);
                cosigner.cosigned = Some((checkpoint.size, checkpoint.root));
                if cosigner.failing {
                    tracing::info!(peer = %cosigner.peer.id, size = checkpoint.size, "peer cosigns again");
                }
                cosigner.failing = false;
                gateway
                    .metrics
                    .cosign_request(&cosigner.peer.id, "cosigned");
                return;
            }
            Ok(Outcome::Conflict(size)) => {
                gateway
                    .metrics
                    .cosign_request(&cosigner.peer.id, "conflict");
                if cosigner.known_size == Some(size) {
                    fail(
                        gateway,
                        cosigner,
                        "conflict",
                        format!("the peer answered 409 for the size it holds, {size}"),
                    );
                    return;
                }
                cosigner.known_size = Some(size);
            }
            Err(reason) => {
                fail(gateway, cosigner, "refused", reason);
                return;
            }
        }
    }
}

/// What a peer answered.
enum Outcome {
    /// Its cosignature line.
    Cosigned(String),
    /// 409: it holds a checkpoint of this size.
    Conflict(u64),
}

async fn request(
    gateway: &Gateway,
    cosigner: &Cosigner,
    checkpoint: &SignedCheckpoint,
    old: u64,
) -> Result<Outcome, String> {
    let proof = if old == 0 || old == checkpoint.size {
        Vec::new()
    } else {
        gateway
            .store
            .consistency_proof(old, checkpoint.size)
            .map_err(|e| format!("cannot prove consistency from size {old}: {e}"))?
    };
    let body = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint_note: checkpoint.note.clone(),
    }
    .to_body();
    let (status, answer) = match cosigner.peer.add_checkpoint(body).await {
        Ok(answer) => answer,
        Err(error) => {
            gateway
                .metrics
                .cosign_request(&cosigner.peer.id, "unreachable");
            return Err(error.to_string());
        }
    };
    match status {
        200 => {
            // Only the line of the peer's witness key counts; others are ignored.
            answer
                .lines()
                .map(|line| format!("{line}\n"))
                .find(|line| {
                    cosigner
                        .verifier
                        .verify(&format!("{}{line}", checkpoint.note))
                        .is_ok()
                })
                .map(Outcome::Cosigned)
                .ok_or_else(|| {
                    gateway
                        .metrics
                        .cosign_request(&cosigner.peer.id, "bad_cosignature");
                    format!(
                        "the answer carries no valid cosignature of {}",
                        cosigner.verifier.name()
                    )
                })
        }
        409 => answer
            .trim()
            .parse::<u64>()
            .map(Outcome::Conflict)
            .map_err(|_| format!("409 without a size: {:?}", answer.trim())),
        _ => {
            gateway.metrics.cosign_request(&cosigner.peer.id, "refused");
            Err(format!("HTTP {status}: {}", answer.trim()))
        }
    }
}

/// Reports a failed request: a warning when the peer starts failing, debug while it goes on.
fn fail(_gateway: &Gateway, cosigner: &mut Cosigner, what: &str, reason: String) {
    if cosigner.failing {
        tracing::debug!(peer = %cosigner.peer.id, what, %reason, "peer did not cosign");
    } else {
        tracing::warn!(peer = %cosigner.peer.id, what, %reason, "peer did not cosign the checkpoint; asking again at the next interval");
    }
    cosigner.failing = true;
}
