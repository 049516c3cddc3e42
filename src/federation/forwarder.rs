//! The outbox to one peer, sent in order: the waiting messages go with `Federation.Forward`,
//! up to 64 a call (which the peer stores in one group commit), until the peer answers each
//! — a receipt (delivered) or a refusal of its policy (refused) — retrying with backoff while
//! it is unreachable or cannot decide yet, so that one message never overtakes another. The answers are recorded as forwarding
//! reports for the senders and the outbox cursor moves past them, together, before the next
//! page; after a crash the messages after the cursor are sent again, and the peer answers
//! those it stored already with their original receipts (same sender, same id): each reaches
//! its recipients once.
//!
//! Also fetches the peers' directories: which of their participants may be addressed.

use super::peers::Peer;
use crate::app::forward::{delivered, refused};
use crate::app::Gateway;
use crate::pb;
use std::sync::Arc;
use std::time::Duration;

/// Messages read from the outbox, and sent in one call, at a time.
const PAGE: usize = crate::app::forward::MAX_FORWARDED;
/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Sends the outbox to `peer` until the task is dropped.
pub async fn run(gateway: Arc<Gateway>, peer: Peer, mut cursor: u64) {
    let mut client = pb::federation_client::FederationClient::new(peer.channel());
    let mut failing = false;
    let mut backoff = FIRST_BACKOFF;
    loop {
        // What was stored before the wake-up is indexed before the outbox is read.
        if let Err(error) = gateway.store.settled().await {
            tracing::error!(peer = %peer.id, %error, "the index cannot catch up; forwarding waits");
            tokio::time::sleep(MAX_BACKOFF).await;
            continue;
        }
        let page = match gateway.outbox(&peer.id, cursor, PAGE) {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(peer = %peer.id, %error, "cannot read the outbox");
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            }
        };
        if page.is_empty() {
            if let Some(state) = gateway.peers.get(&peer.id) {
                // A message stored from now on wakes this; the timeout covers one stored
                // between the read and the wait.
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), state.wake.notified()).await;
            }
            continue;
        }
        // The page's messages, in order, within one request's bytes; those answered before a
        // crash took the cursor's move, and broadcasts of participants not open to peers,
        // are passed over at its start.
        let budget = gateway.config().max_message_bytes;
        let (mut messages, mut passed_up_to, mut passed) = (Vec::new(), cursor, 0u64);
        // Refused here without asking the peer: the sender is no longer open to peers.
        let mut answered = Vec::new();
        let mut bytes = 0;
        for seq in page {
            let stored = match gateway.store.get(seq) {
                Ok(Some(stored)) => stored,
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(peer = %peer.id, seq, %error, "cannot read a message of the outbox");
                    break;
                }
            };
            let answered_before = gateway.answered(&peer.id, seq).unwrap_or(false);
            let closed = !gateway.may_go_out(&stored.envelope);
            if answered_before || closed {
                if !messages.is_empty() {
                    break;
                }
                (passed_up_to, passed) = (seq, passed + 1);
                // An addressed message gets its answer; a broadcast just stays here.
                if closed && !answered_before && !stored.envelope.recipients.is_empty() {
                    let reason = "the sender is no longer open to peers (open_to_peers)";
                    let report = refused(&peer.id, &stored.envelope, "FAILED_PRECONDITION", reason);
                    answered.push((stored, report));
                }
                continue;
            }
            bytes += prost::Message::encoded_len(&stored.envelope);
            if !messages.is_empty() && bytes > budget {
                break;
            }
            messages.push(stored);
        }
        if messages.is_empty() {
            if passed_up_to > cursor {
                record(
                    &gateway,
                    &peer.id,
                    &mut answered,
                    passed_up_to,
                    passed,
                    &mut cursor,
                )
                .await;
            } else {
                tokio::time::sleep(MAX_BACKOFF).await;
            }
            continue;
        }
        let request = pb::ForwardRequest {
            messages: messages
                .iter()
                .map(|stored| pb::ForwardedMessage {
                    envelope: Some(stored.envelope.clone()),
                    origin_seq: stored.receipt.seq,
                    origin_leaf_index: stored.receipt.leaf_index,
                    sender: gateway
                        .participant_at(&stored.envelope.sender)
                        .map(|p| p.to_pb()),
                })
                .collect(),
        };
        let sent = messages.len();
        let results = match client.forward(request).await {
            Ok(answer) if answer.get_ref().results.len() == sent => answer.into_inner().results,
            answer => {
                // Nothing decided: the whole page again, after a while.
                let reason = match &answer {
                    Ok(answer) => format!(
                        "{} results for {sent} messages",
                        answer.get_ref().results.len()
                    ),
                    Err(status) => format!("{:?}: {}", status.code(), status.message()),
                };
                if !failing {
                    tracing::warn!(peer = %peer.id, %reason, "peer unreachable or refusing this gateway; the outbox waits and retries");
                    failing = true;
                }
                gateway.metrics.forwarded(&peer.id, "retried");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if failing {
            tracing::info!(peer = %peer.id, "peer reachable again; forwarding");
            failing = false;
        }
        backoff = FIRST_BACKOFF;
        let early = answered.len();
        let mut up_to = passed_up_to;
        let mut again = false;
        for (stored, result) in messages.into_iter().zip(results) {
            let report = match result.result {
                Some(pb::forward_result::Result::Receipt(receipt)) => {
                    delivered(&peer.id, &stored.envelope, &receipt)
                }
                Some(pb::forward_result::Result::Refused(r)) if r.code != "UNAVAILABLE" => {
                    refused(&peer.id, &stored.envelope, &r.code, &r.reason)
                }
                // Not decided now: this one and the rest again, in order.
                _ => {
                    again = true;
                    break;
                }
            };
            let result = if report.state == pb::ForwardingState::Delivered as i32 {
                "delivered"
            } else {
                "refused"
            };
            gateway.metrics.forwarded(&peer.id, result);
            up_to = stored.receipt.seq;
            answered.push((stored, report));
        }
        let passed = passed + (answered.len() - early) as u64;
        record(
            &gateway,
            &peer.id,
            &mut answered,
            up_to,
            passed,
            &mut cursor,
        )
        .await;
        if again {
            gateway.metrics.forwarded(&peer.id, "retried");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Records the answers and moves the cursor past `up_to`, `passed` messages of the outbox.
async fn record(
    gateway: &Gateway,
    peer: &str,
    answered: &mut Vec<(crate::storage::Stored, pb::ForwardingReport)>,
    up_to: u64,
    passed: u64,
    cursor: &mut u64,
) {
    if up_to <= *cursor {
        return;
    }
    // Not recorded, the cursor stays: the messages are forwarded again (or, answered, passed
    // over), and the peer answers them with their original receipts.
    match gateway
        .forwarded(peer, std::mem::take(answered), up_to, passed)
        .await
    {
        Ok(()) => *cursor = up_to,
        Err(error) => {
            tracing::error!(peer, %error, "cannot record forwarding reports; forwarding them again");
            tokio::time::sleep(MAX_BACKOFF).await;
        }
    }
}

/// Fetches every peer's directory every `interval` until the task is dropped; a peer that did
/// not answer is asked again after a second (or `interval`, if shorter), so that a peer that
/// starts after this gateway is known soon.
pub async fn directories(gateway: Arc<Gateway>, peers: Vec<Peer>, interval: Duration) {
    let retry = interval.min(Duration::from_secs(1));
    let mut due = vec![tokio::time::Instant::now(); peers.len()];
    loop {
        let now = tokio::time::Instant::now();
        for (peer, due) in peers.iter().zip(due.iter_mut()) {
            if *due > now {
                continue;
            }
            let mut client = pb::federation_client::FederationClient::new(peer.channel());
            match client.directory(pb::DirectoryRequest {}).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    if gateway.peers.set_directory(&peer.id, &answer.participants) {
                        tracing::info!(
                            peer = %peer.id,
                            participants = answer.participants.len(),
                            "peer directory updated"
                        );
                    }
                    *due = now + interval;
                }
                Err(status) => {
                    tracing::debug!(peer = %peer.id, code = ?status.code(), reason = status.message(), "cannot fetch the peer's directory");
                    *due = now + retry;
                }
            }
        }
        let next = due.iter().min().copied().unwrap_or(now + interval);
        tokio::time::sleep_until(next).await;
    }
}
