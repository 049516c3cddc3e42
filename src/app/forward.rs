//! Messages between gateways. A message of this gateway's participants addressed to
//! `<id>@<peer>` (or a GREEN/CLEAR broadcast, for peers that take broadcasts) is stored,
//! audited and numbered here like any other, and waits in the outbox to that peer: the
//! messages the [`crate::domain::facets::Facet::Gateway`] postings list after the peer's
//! cursor, a durable cursor of the log. The forwarder ([`crate::federation`]) sends each in
//! order and raises a forwarding report for its sender once the peer answered.
//!
//! A message from a peer is taken as that peer's participant `<id>@<peer>` sent it: this
//! gateway's policy and TLP apply, it is stored, numbered in its recipients' inboxes and
//! audited, and its (sender, id) makes a resent one a duplicate, answered with the original
//! receipt. Addresses are kept relative to each gateway: what is ours loses its `@<us>`,
//! what is the peer's gains `@<peer>`.

use super::error::Error;
use super::Gateway;
use crate::auth::identity::Caller;
use crate::domain::facets::{Facet, BROADCAST};
use crate::domain::participant::{qualify, split_address, Participant};
use crate::domain::{derived, ValidEnvelope};
use crate::pb::{self, envelope::Payload, Kind, Tlp};
use crate::storage::{CommitError, NewMessage, Stored};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The participant name under which the outbox cursor of a peer is kept (no participant id
/// holds '@').
pub fn outbox_cursor_owner(peer: &str) -> String {
    format!("@{peer}")
}

/// The name of that cursor.
pub const OUTBOX_CURSOR: &str = "outbox";

/// Most messages one `Forward` call carries.
pub const MAX_FORWARDED: usize = 64;

impl Gateway {
    /// The participant at `address`: registered here, or published by a peer.
    pub fn participant_at(&self, address: &str) -> Option<Arc<Participant>> {
        match split_address(address) {
            (_, None) => self.registry.load().get(address).cloned(),
            (_, Some(gateway)) => self.peers.participant(gateway, address),
        }
    }

    /// The participants of this gateway its peers may address.
    pub fn published(&self) -> Vec<pb::Participant> {
        self.registry
            .load()
            .iter()
            .filter(|p| p.open_to_peers == Some(true))
            .map(|p| p.to_pb())
            .collect()
    }

    /// The peers a stored message of ours goes to, from its postings' facet values.
    pub(super) fn peers_of(&self, envelope: &pb::Envelope) -> Vec<String> {
        let config = self.config();
        if config.peers.is_empty() {
            return Vec::new();
        }
        // The postings' values, without a whole pass over the envelope's facets.
        let mut peers = Vec::new();
        for value in crate::domain::facets::gateways_of(envelope) {
            if value == BROADCAST {
                peers.extend(
                    config
                        .peers
                        .iter()
                        .filter(|p| p.broadcasts)
                        .map(|p| p.id.clone()),
                );
            } else {
                peers.push(value.to_string());
            }
        }
        peers.sort();
        peers.dedup();
        peers
    }

    /// Refuses when a message for one of `peers` would overfill its outbox.
    pub(super) fn check_outboxes<'a>(
        &self,
        peers: impl Iterator<Item = &'a String>,
    ) -> Result<(), Error> {
        let max = self.config().federation.outbox_max_messages;
        let mut asked: std::collections::BTreeMap<&String, u64> = Default::default();
        for peer in peers {
            *asked.entry(peer).or_default() += 1;
        }
        for (peer, n) in asked {
            let waiting = self
                .peers
                .get(peer)
                .map_or(0, |p| p.waiting.load(Ordering::Relaxed));
            if waiting + n > max {
                return Err(Error::OutboxFull {
                    peer: peer.clone(),
                    waiting,
                    max,
                });
            }
        }
        Ok(())
    }

    /// The messages waiting for `peer` after sequence number `after`, oldest first, at most
    /// `budget`.
    pub fn outbox(&self, peer: &str, after: u64, budget: usize) -> Result<Vec<u64>, Error> {
        let broadcasts = self
            .config()
            .peers
            .iter()
            .any(|p| p.id == peer && p.broadcasts);
        let mut values = vec![peer.to_string()];
        if broadcasts {
            values.push(BROADCAST.to_string());
        }
        Ok(self.store.postings(
            Some((Facet::Gateway, &values)),
            after + 1,
            u64::MAX,
            budget,
            true,
        )?)
    }

    /// Starts the outbox to `peer` where it was left, or, the first time, after the last
    /// message stored now (what was stored before peering is not sent); counts what waits.
    pub async fn open_outbox(&self, peer: &str) -> Result<u64, Error> {
        let owner = outbox_cursor_owner(peer);
        let (cursor, _) = self
            .store
            .set_cursor(&owner, OUTBOX_CURSOR, self.store.last_seq(), true, None)
            .await?;
        let max = self.config().federation.outbox_max_messages as usize;
        let waiting = self.outbox(peer, cursor, max + 1)?.len() as u64;
        if let Some(state) = self.peers.get(peer) {
            state.waiting.store(waiting, Ordering::Relaxed);
        }
        Ok(cursor)
    }

    /// Records the peer's answers to the messages `answered` (each stored here) — one
    /// forwarding report each, for its sender — then moves the outbox cursor past `up_to`,
    /// `passed` messages of the outbox in all (the answered ones and those skipped).
    pub async fn forwarded(
        &self,
        peer: &str,
        answered: Vec<(Stored, pb::ForwardingReport)>,
        up_to: u64,
        passed: u64,
    ) -> Result<(), Error> {
        let gateway_id = self.config().gateway_id.clone();
        let reports: Vec<NewMessage> = answered
            .iter()
            .map(|(stored, report)| {
                let envelope = derived::forwarding_report(
                    &gateway_id,
                    &stored.envelope,
                    stored.receipt.seq,
                    report.clone(),
                );
                let to = vec![stored.envelope.sender.clone()];
                super::submit::new_message(envelope, Kind::ForwardingReport, to, None)
            })
            .collect();
        if !reports.is_empty() {
            self.store.commit(reports).await?;
        }
        self.store
            .set_cursor(
                &outbox_cursor_owner(peer),
                OUTBOX_CURSOR,
                up_to,
                false,
                None,
            )
            .await?;
        self.peers.release(peer, passed);
        Ok(())
    }

    /// Whether what `peer` answered to message `seq` is recorded already (a report raised
    /// before a crash took the cursor's move): such a message is not sent again.
    pub fn answered(&self, peer: &str, seq: u64) -> Result<bool, Error> {
        let id = derived::forwarding_report_id(peer, seq);
        Ok(self.store.seq_of(&self.config().gateway_id, &id)?.is_some())
    }

    /// Whether the sender of a stored message of ours may reach peers: a broadcast of a
    /// participant that is not open to peers stays here.
    pub fn may_go_out(&self, envelope: &pb::Envelope) -> bool {
        self.registry
            .load()
            .get(&envelope.sender)
            .is_some_and(|p| p.open_to_peers == Some(true))
    }

    /// Where a message of ours stands at each peer it goes to: the report raised when the
    /// peer answered, or pending.
    pub fn forwarding_of(&self, stored: &Stored) -> Result<Vec<pb::ForwardingReport>, Error> {
        let gateway_id = self.config().gateway_id.clone();
        let mut out = Vec::new();
        for peer in self.peers_of(&stored.envelope) {
            let id = derived::forwarding_report_id(&peer, stored.receipt.seq);
            let report =
                self.store
                    .get_by_ref(&gateway_id, &id)?
                    .and_then(|r| match &r.envelope.payload {
                        Some(Payload::ForwardingReport(report)) => Some(report.clone()),
                        _ => None,
                    });
            out.push(report.unwrap_or_else(|| pb::ForwardingReport {
                message: Some(pb::MessageRef {
                    sender: stored.envelope.sender.clone(),
                    id: stored.envelope.id.clone(),
                }),
                gateway: peer.clone(),
                recipients: recipients_at(&stored.envelope, &peer),
                state: pb::ForwardingState::Pending as i32,
                ..Default::default()
            }));
        }
        Ok(out)
    }

    /// Messages from peer gateway `from`, in the order it stored them: each stored, numbered
    /// and audited here as sent by its participant `<id>@<from>`, those accepted in one group
    /// commit; one result per message. The whole call fails only when nothing can be decided
    /// now (the caller is no peer, the store is unavailable): then it is sent again.
    pub async fn receive_forwarded(
        &self,
        from: &str,
        messages: Vec<pb::ForwardedMessage>,
    ) -> Result<Vec<Result<pb::Receipt, Error>>, Error> {
        let config = self.config();
        let Some(peer) = config.peers.iter().find(|p| p.id == from) else {
            return Err(Error::NotAPeer(from.to_string()));
        };
        if !(1..=MAX_FORWARDED).contains(&messages.len()) {
            return Err(Error::invalid(
                "messages",
                format!(
                    "1 to {MAX_FORWARDED} messages per call, not {}",
                    messages.len()
                ),
            ));
        }
        // An answer refs a message that may have been stored just before: find it.
        self.store.settled().await?;
        let mut results: Vec<Option<Result<pb::Receipt, Error>>> = Vec::new();
        let mut batch: Vec<(usize, NewMessage)> = Vec::new();
        let mut deferred = false;
        for (i, message) in messages.into_iter().enumerate() {
            // After one that cannot be decided now, none is stored: they come again in order.
            if deferred {
                results.push(Some(Err(Error::Deferred)));
                continue;
            }
            match self.prepare_forwarded(peer, &config.gateway_id, message) {
                Ok(prepared) => {
                    batch.push((i, prepared));
                    results.push(None);
                }
                Err(error) => {
                    deferred = error.is_transient();
                    results.push(Some(Err(error)));
                }
            }
        }
        // All together; one whose id is taken with other content is refused alone.
        while !batch.is_empty() {
            let prepared = batch.iter().map(|(_, m)| m.clone()).collect();
            match self.store.commit(prepared).await {
                Ok(receipts) => {
                    for ((i, _), receipt) in batch.drain(..).zip(receipts) {
                        results[i] = Some(Ok(receipt));
                    }
                }
                Err(conflict @ CommitError::Conflict { index, .. }) if index < batch.len() => {
                    let (i, _) = batch.remove(index);
                    results[i] = Some(Err(Error::Commit(conflict)));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invalid("messages", "not decided"))))
            .collect())
    }

    /// One message from `peer`, as this gateway (`own`) stores it, or why not.
    fn prepare_forwarded(
        &self,
        peer: &crate::ops::config::PeerConfig,
        own: &str,
        message: pb::ForwardedMessage,
    ) -> Result<NewMessage, Error> {
        let from = peer.id.as_str();
        let mut envelope = message
            .envelope
            .ok_or_else(|| Error::invalid("envelope", "is required"))?;
        if envelope.sender.contains('@') {
            return Err(Error::invalid(
                "envelope.sender",
                "a gateway forwards only what its own participants send",
            ));
        }
        let sender_address = qualify(&envelope.sender, from);
        let sender = match message.sender {
            // As the calling gateway registers it.
            Some(p) if p.id == envelope.sender => self
                .peers
                .participant_of(from, &p)
                .ok_or_else(|| Error::invalid("sender.role", "is not a role"))?,
            Some(_) => return Err(Error::invalid("sender.id", "is not the envelope's sender")),
            // From the copy of the peer's directory.
            None if !self.peers.knows(from) => {
                return Err(Error::PeerNotKnownYet(from.to_string()))
            }
            None => self.participant_at(&sender_address).ok_or_else(|| {
                Error::invalid(
                    "envelope.sender",
                    format!("{sender_address} is not a participant {from} publishes"),
                )
            })?,
        };
        let broadcast = envelope.recipients.is_empty();
        if broadcast && !peer.broadcasts {
            return Err(Error::invalid(
                "envelope.recipients",
                format!("this gateway takes no broadcasts from {from}"),
            ));
        }
        let registry = self.registry.load();
        let policy = self.policy.load();
        let mut recipients = Vec::new();
        for (i, r) in envelope.recipients.iter().enumerate() {
            match split_address(r) {
                (id, Some(gateway)) if gateway == own => {
                    match registry.get(id).filter(|p| p.open_to_peers == Some(true)) {
                        Some(_) => recipients.push(id.to_string()),
                        None => {
                            return Err(Error::invalid(
                                format!("envelope.recipients[{i}]"),
                                format!(
                                    "{r} is not a participant this gateway publishes to its peers"
                                ),
                            ))
                        }
                    }
                }
                // Recipients elsewhere are not this gateway's to serve.
                _ => {}
            }
        }
        if !broadcast && recipients.is_empty() {
            return Err(Error::invalid(
                "envelope.recipients",
                format!("no recipient is a participant of {own}"),
            ));
        }
        envelope.recipients = recipients;
        envelope.sender = sender_address.clone();
        for r in envelope.refs.iter_mut().chain(envelope.supersedes.as_mut()) {
            r.sender = relative(&r.sender, own, from);
        }
        // The participants a payload names, as seen from here.
        let seller = match &mut envelope.payload {
            Some(Payload::TakedownNotice(notice)) => {
                notice.platform = relative(&notice.platform, own, from);
                notice.seller.as_mut()
            }
            Some(Payload::SeizureNotification(seizure)) => seizure.seller.as_mut(),
            _ => None,
        };
        if let Some(seller) = seller {
            seller.platform = relative(&seller.platform, own, from);
        }
        if let Some(payload) = &envelope.payload {
            let kind = crate::domain::payload::kind_of(payload);
            let to: Vec<&Participant> = envelope
                .recipients
                .iter()
                .filter_map(|id| registry.get(id).map(AsRef::as_ref))
                .collect();
            policy.authorize_send(&sender, kind, &to)?;
        }
        let valid = ValidEnvelope::new(envelope, &sender_address, "envelope", super::unix_now())?;
        let kind = valid.kind();
        let caller = Caller {
            participant: sender.clone(),
            fingerprint: [0; 32],
            officer: None,
        };
        let answers = self.check_links(&caller, valid.envelope(), "envelope")?;
        let deliver_to: Vec<String> = if broadcast {
            if !matches!(
                Tlp::try_from(valid.envelope().tlp),
                Ok(Tlp::Green | Tlp::Clear)
            ) {
                return Err(Error::invalid(
                    "envelope.tlp",
                    "only TLP_CLEAR and TLP_GREEN may be broadcast",
                ));
            }
            registry
                .iter()
                .filter(|p| {
                    p.open_to_peers == Some(true) && policy.may_receive(sender.role, kind, p.role)
                })
                .map(|p| p.id.clone())
                .collect()
        } else {
            valid.envelope().recipients.clone()
        };
        let mut message = super::submit::new_message(valid.into_inner(), kind, deliver_to, None);
        message.answers = answers;
        Ok(message)
    }
}

/// An address as seen from gateway `own` of a message that came from peer `from`: ours lose
/// `@<own>`, the peer's own gain `@<from>`, others stay.
fn relative(address: &str, own: &str, from: &str) -> String {
    match split_address(address) {
        (id, Some(gateway)) if gateway == own => id.to_string(),
        (_, Some(_)) => address.to_string(),
        (id, None) => qualify(id, from),
    }
}

/// The recipients of `envelope` at `peer`.
fn recipients_at(envelope: &pb::Envelope, peer: &str) -> Vec<String> {
    envelope
        .recipients
        .iter()
        .filter(|r| split_address(r).1 == Some(peer))
        .cloned()
        .collect()
}

/// The report on a message the peer stored: its receipt, with the addresses of its inboxes.
pub fn delivered(
    peer: &str,
    envelope: &pb::Envelope,
    receipt: &pb::Receipt,
) -> pb::ForwardingReport {
    pb::ForwardingReport {
        message: None,
        gateway: peer.to_string(),
        recipients: recipients_at(envelope, peer),
        state: pb::ForwardingState::Delivered as i32,
        peer_seq: receipt.seq,
        peer_leaf_index: receipt.leaf_index,
        peer_envelope_sha256: receipt.envelope_sha256.clone(),
        peer_placements: receipt
            .placements
            .iter()
            .map(|p| pb::PeerPlacement {
                recipient: qualify(&p.recipient, peer),
                inbox_no: p.inbox_no,
                leaf_index: p.leaf_index,
            })
            .collect(),
        code: String::new(),
        reason: String::new(),
    }
}

/// The report on a message the peer refused.
pub fn refused(
    peer: &str,
    envelope: &pb::Envelope,
    code: &str,
    reason: &str,
) -> pb::ForwardingReport {
    pb::ForwardingReport {
        message: None,
        gateway: peer.to_string(),
        recipients: recipients_at(envelope, peer),
        state: pb::ForwardingState::Refused as i32,
        code: code.to_string(),
        reason: reason.chars().take(1024).collect(),
        ..Default::default()
    }
}
