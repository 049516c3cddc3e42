//! `Submit` and `SubmitBatch`: authorize and validate each envelope, check what it says about
//! other messages (answering a message the sender may not read as one that is not stored),
//! decide its recipients, and commit all of them or none.

use super::error::Error;
use super::{addressed_to, Gateway};
use crate::auth::identity::Caller;
use crate::auth::registry::Registry;
use crate::domain::facets::Facets;
use crate::domain::participant::Participant;
use crate::domain::policy::{kind_name, Policy};
use crate::domain::signature::{self, SignatureError};
use crate::domain::{ValidEnvelope, Violations};
use crate::pb::limits::MAX_BATCH;
use crate::pb::{self, envelope::Payload, Kind};
use crate::storage::{CommitError, NewMessage};
use prost::Message;
use sha2::{Digest, Sha256};
use std::sync::Arc;

impl Gateway {
    /// Validates, authorizes and stores envelopes from `caller`, all or nothing. `batch` names
    /// fields `envelopes[i]` instead of `envelope`.
    pub async fn submit(
        &self,
        caller: &Caller,
        envelopes: Vec<pb::Envelope>,
        batch: bool,
    ) -> Result<Vec<pb::Receipt>, Error> {
        if batch && !(1..=MAX_BATCH).contains(&envelopes.len()) {
            return Err(Error::invalid(
                "envelopes",
                format!(
                    "1 to {MAX_BATCH} envelopes per batch, not {}",
                    envelopes.len()
                ),
            ));
        }
        let size: usize = envelopes.iter().map(Message::encoded_len).sum();
        let max = self.config().max_message_bytes;
        if size > max {
            return Err(Error::TooLarge { size, max });
        }
        // An answer refs a message that may have been stored just before: find it.
        if envelopes.iter().any(|e| !e.refs.is_empty()) {
            self.store.settled().await?;
        }
        let registry = self.registry.load();
        let policy = self.policy.load();
        let mut prepared = Vec::with_capacity(envelopes.len());
        let mut failures: Vec<(usize, Error)> = Vec::new();
        let mut seen_ids = std::collections::HashSet::new();
        for (i, envelope) in envelopes.into_iter().enumerate() {
            let path = if batch {
                format!("envelopes[{i}]")
            } else {
                "envelope".to_string()
            };
            if !seen_ids.insert(envelope.id.clone()) {
                failures.push((
                    i,
                    Error::invalid(
                        format!("{path}.id"),
                        format!("{:?} appears twice in the batch", envelope.id),
                    ),
                ));
                continue;
            }
            match self.prepare(caller, envelope, &path, &registry, &policy) {
                Ok(message) => prepared.push(message),
                Err(e) => failures.push((i, e)),
            }
        }
        if !failures.is_empty() {
            return Err(if batch {
                batch_error(failures)
            } else {
                failures.remove(0).1
            });
        }
        // What the gateway raises from these messages is stored in the same commit, after
        // them: durable, numbered and audited with them, or not at all.
        let submitted = prepared.len();
        let peers: Vec<Vec<String>> = prepared
            .iter()
            .map(|m| self.peers_of(&m.envelope))
            .collect();
        self.check_outboxes(peers.iter().flatten())?;
        for peer in peers.iter().flatten() {
            self.peers.reserve(peer, 1);
        }
        let release = |receipts: Option<&[pb::Receipt]>| {
            for (i, peers) in peers.iter().enumerate() {
                let stored = receipts
                    .and_then(|r| r.get(i))
                    .is_some_and(|r| !r.duplicate);
                for peer in peers {
                    if stored {
                        self.peers.wake(peer);
                    } else {
                        self.peers.release(peer, 1);
                    }
                }
            }
        };
        let derived = match self
            .derive(&prepared, &registry, &policy, &self.config())
            .await
        {
            Ok(derived) => derived,
            Err(e) => {
                release(None);
                return Err(e);
            }
        };
        prepared.extend(derived);
        let committed = self.store.commit(prepared).await;
        release(committed.as_deref().ok());
        let mut receipts = committed.map_err(|e| match e {
            CommitError::Conflict { index, .. } if batch => {
                batch_error(vec![(index, Error::Commit(e))])
            }
            e => Error::Commit(e),
        })?;
        receipts.truncate(submitted);
        Ok(receipts)
    }

    /// Turns one envelope into a message ready to store: first who may send what (the
    /// sender's role, the payload's kind, the registered recipients' roles), so that a
    /// sender learns nothing of the fields of a message it may not send; then the fields;
    /// then what it says about other messages.
    fn prepare(
        &self,
        caller: &Caller,
        envelope: pb::Envelope,
        path: &str,
        registry: &Registry,
        policy: &Policy,
    ) -> Result<NewMessage, Error> {
        let sender = &caller.participant;
        if let Some(payload) = &envelope.payload {
            let kind = crate::domain::payload::kind_of(payload);
            let known: Vec<Arc<Participant>> = envelope
                .recipients
                .iter()
                .filter_map(|id| self.recipient(id, registry))
                .collect();
            let recipients: Vec<&Participant> = known.iter().map(AsRef::as_ref).collect();
            policy.authorize_send(sender, kind, &recipients)?;
        }
        let valid = ValidEnvelope::new(envelope, caller.id(), path, super::unix_now())?;
        let kind = valid.kind();
        let envelope = valid.envelope();
        check_signature(sender, envelope, path, registry)?;

        let mut v = Violations::default();
        let mut recipients: Vec<Arc<Participant>> = Vec::with_capacity(envelope.recipients.len());
        for (i, id) in envelope.recipients.iter().enumerate() {
            match self.recipient(id, registry) {
                // Peers take messages only from participants published to them.
                Some(_) if id.contains('@') && sender.open_to_peers != Some(true) => v.add(
                    format!("{path}.recipients[{i}]"),
                    format!(
                        "{} is not open to peers (open_to_peers in the registry): it cannot address {id}",
                        sender.id
                    ),
                ),
                Some(p) => recipients.push(p),
                None => v.add(
                    format!("{path}.recipients[{i}]"),
                    self.unknown_recipient(id),
                ),
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let answers = self.check_links(caller, envelope, path)?;

        let deliver_to: Vec<String> = if recipients.is_empty() {
            // A GREEN or CLEAR broadcast: every participant the policy lets receive it.
            registry
                .iter()
                .filter(|p| p.id != sender.id && policy.may_receive(sender.role, kind, p.role))
                .map(|p| p.id.clone())
                .collect()
        } else {
            // Participants of peers have their inboxes there: the outbox takes them.
            envelope
                .recipients
                .iter()
                .filter(|r| !r.contains('@'))
                .cloned()
                .collect()
        };
        let mut message = new_message(valid.into_inner(), kind, deliver_to, None);
        message.officer = caller.officer.clone();
        message.answers = answers;
        Ok(message)
    }

    /// A recipient: a participant registered here, or one a peer publishes.
    fn recipient(&self, address: &str, registry: &Registry) -> Option<Arc<Participant>> {
        match crate::domain::participant::split_address(address) {
            (_, None) => registry.get(address).cloned(),
            (_, Some(_)) => self.participant_at(address),
        }
    }

    /// Why `address` is no recipient.
    fn unknown_recipient(&self, address: &str) -> String {
        match crate::domain::participant::split_address(address) {
            (_, None) => format!("participant {address:?} is not registered"),
            (_, Some(gateway)) if gateway == self.config().gateway_id => {
                format!("{address:?} is a participant of this gateway: address it by its id alone")
            }
            (_, Some(gateway)) if self.peers.get(gateway).is_none() => {
                format!("{gateway:?} is not a peer gateway of this gateway")
            }
            (_, Some(gateway)) => format!("{address:?} is not a participant {gateway} publishes"),
        }
    }

    /// Checks what a payload says about other messages and participants: a notice names a
    /// platform among its recipients; an outcome or a response refs a message addressed to
    /// its sender of the kind it answers.
    pub(super) fn check_links(
        &self,
        caller: &Caller,
        envelope: &pb::Envelope,
        path: &str,
    ) -> Result<Option<(String, u64)>, Error> {
        let mut v = Violations::default();
        let mut answers = None;
        match &envelope.payload {
            Some(Payload::TakedownNotice(notice))
                if !envelope.recipients.contains(&notice.platform) =>
            {
                v.add(
                    format!("{path}.takedown_notice.platform"),
                    format!("{:?} must be one of the recipients", notice.platform),
                );
            }
            Some(Payload::TakedownOutcome(_)) => {
                answers = self.check_answers(
                    caller,
                    envelope,
                    &[Kind::TakedownNotice, Kind::ListingAlert],
                    path,
                    &mut v,
                )?
            }
            Some(Payload::DataResponse(_)) => {
                answers =
                    self.check_answers(caller, envelope, &[Kind::DataRequest], path, &mut v)?
            }
            _ => {}
        }
        if v.is_empty() {
            Ok(answers)
        } else {
            Err(v.into())
        }
    }

    fn check_answers(
        &self,
        caller: &Caller,
        envelope: &pb::Envelope,
        answers: &[Kind],
        path: &str,
        v: &mut Violations,
    ) -> Result<Option<(String, u64)>, Error> {
        let answerable = answers
            .iter()
            .map(|k| kind_name(*k))
            .collect::<Vec<_>>()
            .join(" or ");
        let Some(first) = envelope.refs.first() else {
            v.add(
                format!("{path}.refs"),
                format!("must ref the {answerable} this answers"),
            );
            return Ok(None);
        };
        let field = format!("{path}.refs[0]");
        // A message the caller may not read is answered as one that is not stored: an answer
        // learns nothing of other participants' messages.
        let stored = self
            .store
            .get_by_ref(&first.sender, &first.id)?
            .filter(|stored| self.may_read(caller, stored));
        match stored {
            None => v.add(
                field,
                format!(
                    "no message {:?} from {} is stored that {} may read",
                    first.id,
                    first.sender,
                    caller.id()
                ),
            ),
            Some(stored) if !answers.iter().any(|k| *k as i32 == stored.envelope.kind) => v.add(
                field,
                format!(
                    "message {:?} from {} is not a {answerable}",
                    first.id, first.sender
                ),
            ),
            Some(stored) if !addressed_to(&stored.envelope, &stored.receipt, caller.id()) => v.add(
                field,
                format!(
                    "message {:?} from {} is not addressed to {}",
                    first.id,
                    first.sender,
                    caller.id()
                ),
            ),
            Some(stored) => return Ok(Some((stored.envelope.sender, stored.receipt.seq))),
        }
        Ok(None)
    }
}

/// `envelope` (valid, sender set) ready to store for the inboxes of `deliver_to`; raised by
/// the gateway from message `derived_from` of the same commit, if given.
pub(super) fn new_message(
    envelope: pb::Envelope,
    kind: Kind,
    deliver_to: Vec<String>,
    derived_from: Option<usize>,
) -> NewMessage {
    let encoded = envelope.encode_to_vec();
    let digest: [u8; 32] = Sha256::digest(&encoded).into();
    NewMessage {
        sender: envelope.sender.clone(),
        id: envelope.id.clone(),
        kind,
        encoded,
        digest,
        deliver_to,
        officer: None,
        answers: None,
        index_prefixes: crate::storage::index_prefixes(&Facets::of(&envelope)),
        envelope: Arc::new(envelope),
        derived_from,
    }
}

/// Verifies the sender's signature on `envelope` (validated, sender set) against its
/// registered keys; an unsigned envelope passes unless the sender must sign. Unsigned
/// envelopes cost nothing here.
fn check_signature(
    sender: &Participant,
    envelope: &pb::Envelope,
    path: &str,
    registry: &Registry,
) -> Result<(), Error> {
    let refused = |e: SignatureError| Error::invalid(format!("{path}.signature"), e.to_string());
    if envelope.signature.is_empty() {
        return match sender.require_signature {
            Some(true) => Err(refused(SignatureError::Required(sender.id.clone()))),
            _ => Ok(()),
        };
    }
    signature::verify(envelope, registry.signing_keys(&sender.id))
        .map(|_| ())
        .map_err(refused)
}

/// One error for a refused batch: the first failure decides the status, and every failing
/// item is listed under its `envelopes[i]` path.
fn batch_error(mut failures: Vec<(usize, Error)>) -> Error {
    failures.sort_by_key(|(i, _)| *i);
    let mut violations = Violations::default();
    for (i, error) in &failures {
        match error {
            Error::Invalid(v) => violations.append(v.clone()),
            other => violations.add(format!("envelopes[{i}]"), other.to_string()),
        }
    }
    let first = Box::new(failures.swap_remove(0).1);
    Error::Batch { first, violations }
}
