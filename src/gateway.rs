//! What the gateway does for each call, independent of gRPC: identify the caller, validate and
//! authorize what it sends, commit it, and decide what it may read. The tonic handlers in
//! [`crate::service`] only translate to and from this.

use crate::config::Config;
use crate::error::Error;
use crate::identity::{authenticate, Caller, Participant, PeerInfo, Registry};
use crate::model::{ValidEnvelope, Violations};
use crate::pb::{self, envelope::Payload, Kind, Tlp};
use crate::policy::{kind_name, Policy};
use crate::store::{NewMessage, Store, StoreOptions, Stored};
use arc_swap::ArcSwap;
use prost::Message;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Most envelopes in one `SubmitBatch`.
pub const MAX_BATCH: usize = 100;
/// Default and largest page of `ListInbox`.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page of `ListInbox`.
pub const MAX_PAGE: u32 = 1000;

/// Errors opening the gateway.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The registry could not be loaded.
    #[error(transparent)]
    Registry(#[from] crate::identity::RegistryError),
    /// The policy is invalid.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The store could not be opened.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: String,
        /// Why.
        source: crate::store::StoreError,
    },
}

/// The gateway's state, shared by all calls.
pub struct Gateway {
    /// The configuration it was started with.
    pub config: Config,
    /// The participant registry in force.
    registry: ArcSwap<Registry>,
    /// The policy in force.
    policy: ArcSwap<Policy>,
    /// The message store.
    pub store: Store,
}

impl Gateway {
    /// Loads the registry and policy and opens the store.
    pub fn open(config: Config) -> Result<Gateway, OpenError> {
        let registry = Registry::load(&config.registry)?;
        let policy = config.policy().map_err(OpenError::Policy)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| OpenError::Store {
            dir: config.data_dir.display().to_string(),
            source: crate::store::StoreError::Engine(e.to_string()),
        })?;
        let store = Store::open(
            &config.data_dir,
            StoreOptions {
                max_batch: config.commit.max_batch,
                queue: config.commit.queue,
            },
        )
        .map_err(|source| OpenError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
        Ok(Gateway {
            config,
            registry: ArcSwap::from_pointee(registry),
            policy: ArcSwap::from_pointee(policy),
            store,
        })
    }

    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Identifies the caller of a connection.
    pub fn identify(&self, peer: Option<&PeerInfo>) -> Result<Caller, Error> {
        Ok(authenticate(peer, &self.registry.load())?)
    }

    /// Validates, authorizes and stores envelopes from `caller`, all or nothing. `batch` names
    /// fields `envelopes[i]` instead of `envelope`.
    pub async fn submit(
        &self,
        caller: &Caller,
        envelopes: Vec<pb::Envelope>,
        batch: bool,
    ) -> Result<Vec<pb::Receipt>, Error> {
        if batch && !(1..=MAX_BATCH).contains(&envelopes.len()) {
            let mut v = Violations::default();
            v.add(
                "envelopes",
                format!(
                    "1 to {MAX_BATCH} envelopes per batch, not {}",
                    envelopes.len()
                ),
            );
            return Err(v.into());
        }
        let size: usize = envelopes.iter().map(Message::encoded_len).sum();
        if size > self.config.max_message_bytes {
            return Err(Error::TooLarge {
                size,
                max: self.config.max_message_bytes,
            });
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
                let mut v = Violations::default();
                v.add(
                    format!("{path}.id"),
                    format!("{:?} appears twice in the batch", envelope.id),
                );
                failures.push((i, v.into()));
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
        self.store.commit(prepared).await.map_err(|e| match e {
            crate::store::CommitError::Conflict { index, .. } if batch => {
                batch_error(vec![(index, Error::Commit(e))])
            }
            e => Error::Commit(e),
        })
    }

    /// Turns one envelope into a message ready to store.
    fn prepare(
        &self,
        caller: &Caller,
        envelope: pb::Envelope,
        path: &str,
        registry: &Registry,
        policy: &Policy,
    ) -> Result<NewMessage, Error> {
        let valid = ValidEnvelope::new(envelope, caller.id(), path)?;
        let sender = &caller.participant;
        let kind = valid.kind();
        let envelope = valid.envelope();

        let mut v = Violations::default();
        let mut recipients: Vec<&Participant> = Vec::with_capacity(envelope.recipients.len());
        for (i, id) in envelope.recipients.iter().enumerate() {
            match registry.get(id) {
                Some(p) => recipients.push(p),
                None => v.add(
                    format!("{path}.recipients[{i}]"),
                    format!("participant {id:?} is not registered"),
                ),
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        policy.authorize_send(sender, kind, &recipients)?;
        self.check_links(caller, envelope, path)?;

        let deliver_to: Vec<String> = if recipients.is_empty() {
            // A GREEN or CLEAR broadcast: every participant the policy lets receive it.
            registry
                .iter()
                .filter(|p| p.id != sender.id && policy.may_receive(sender.role, kind, p.role))
                .map(|p| p.id.clone())
                .collect()
        } else {
            envelope.recipients.clone()
        };
        let encoded = valid.envelope().encode_to_vec();
        let digest: [u8; 32] = Sha256::digest(&encoded).into();
        Ok(NewMessage {
            sender: sender.id.clone(),
            id: envelope.id.clone(),
            encoded,
            digest,
            deliver_to,
            officer: caller.officer.clone(),
        })
    }

    /// Checks what a payload says about other messages and participants: a notice names a
    /// platform among its recipients; an outcome or a response refs a message addressed to
    /// its sender of the kind it answers.
    fn check_links(
        &self,
        caller: &Caller,
        envelope: &pb::Envelope,
        path: &str,
    ) -> Result<(), Error> {
        let mut v = Violations::default();
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
                self.check_answers(caller, envelope, Kind::TakedownNotice, path, &mut v)?
            }
            Some(Payload::DataResponse(_)) => {
                self.check_answers(caller, envelope, Kind::DataRequest, path, &mut v)?
            }
            _ => {}
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(v.into())
        }
    }

    fn check_answers(
        &self,
        caller: &Caller,
        envelope: &pb::Envelope,
        answers: Kind,
        path: &str,
        v: &mut Violations,
    ) -> Result<(), Error> {
        let Some(first) = envelope.refs.first() else {
            v.add(
                format!("{path}.refs"),
                format!("must ref the {} this answers", kind_name(answers)),
            );
            return Ok(());
        };
        let field = format!("{path}.refs[0]");
        match self.store.get_by_ref(&first.sender, &first.id)? {
            None => v.add(
                field,
                format!("no message {:?} from {} is stored", first.id, first.sender),
            ),
            Some(stored) if stored.envelope.kind != answers as i32 => v.add(
                field,
                format!(
                    "message {:?} from {} is not a {}",
                    first.id,
                    first.sender,
                    kind_name(answers)
                ),
            ),
            Some(stored) if !addressed_to(&stored, caller.id()) => v.add(
                field,
                format!(
                    "message {:?} from {} is not addressed to {}",
                    first.id,
                    first.sender,
                    caller.id()
                ),
            ),
            Some(_) => {}
        }
        Ok(())
    }

    /// The message `key` names, if the caller may read it.
    pub fn get(
        &self,
        caller: &Caller,
        key: Option<pb::get_request::Key>,
    ) -> Result<pb::StoredMessage, Error> {
        let (stored, what) = match key {
            Some(pb::get_request::Key::Seq(seq)) => (self.store.get(seq)?, format!("seq {seq}")),
            Some(pb::get_request::Key::Ref(r)) => (
                self.store.get_by_ref(&r.sender, &r.id)?,
                format!("{:?} from {}", r.id, r.sender),
            ),
            None => {
                let mut v = Violations::default();
                v.add("key", "is required: seq or ref");
                return Err(v.into());
            }
        };
        let stored =
            stored.ok_or_else(|| Error::NotFound(format!("no message {what} is stored")))?;
        if !self.may_read(caller, &stored) {
            let tlp = Tlp::try_from(stored.envelope.tlp).unwrap_or(Tlp::Unspecified);
            return Err(Error::ReadDenied(format!(
                "tlp: message {what} is {} and {} may not read it",
                tlp.as_str_name(),
                caller.id()
            )));
        }
        Ok(view(stored, caller.id()))
    }

    /// A page of the caller's inbox.
    pub fn list_inbox(
        &self,
        caller: &Caller,
        request: pb::ListInboxRequest,
    ) -> Result<pb::ListInboxResponse, Error> {
        let mut v = Violations::default();
        let limit = match request.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                v.add("limit", format!("at most {MAX_PAGE}"));
                n
            }
            n => n,
        } as usize;
        let mut kinds = Vec::with_capacity(request.kinds.len());
        for (i, k) in request.kinds.iter().enumerate() {
            match Kind::try_from(*k) {
                Ok(Kind::Unspecified) | Err(_) => {
                    v.add(format!("kinds[{i}]"), format!("{k} is not a message kind"))
                }
                Ok(kind) => kinds.push(kind as i32),
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let head = self.store.inbox_head(caller.id())?;
        let mut messages = Vec::new();
        let mut next_after = request.after;
        // Filters may skip entries: look at most this many before answering a short page.
        let mut budget = limit.saturating_mul(10).max(1000);
        'pages: while messages.len() < limit && budget > 0 {
            let entries = self
                .store
                .inbox(caller.id(), next_after, limit.min(budget))?;
            if entries.is_empty() {
                break;
            }
            for (inbox_no, seq) in entries {
                budget -= 1;
                next_after = inbox_no;
                let Some(stored) = self.store.get(seq)? else {
                    continue;
                };
                if (kinds.is_empty() || kinds.contains(&stored.envelope.kind))
                    && self.may_read(caller, &stored)
                {
                    messages.push(view(stored, caller.id()));
                    if messages.len() >= limit {
                        break 'pages;
                    }
                }
            }
        }
        Ok(pb::ListInboxResponse {
            messages,
            next_after,
            head,
        })
    }

    /// TLP and policy: may the caller read this stored message?
    pub fn may_read(&self, caller: &Caller, stored: &Stored) -> bool {
        if addressed_to(stored, caller.id()) {
            return true;
        }
        let envelope = &stored.envelope;
        let registry = self.registry.load();
        let sender_role = registry.get(&envelope.sender).map(|p| p.role);
        self.policy.load().may_read(
            &caller.participant,
            &envelope.sender,
            sender_role,
            &envelope.recipients,
            Kind::try_from(envelope.kind).unwrap_or(Kind::Unspecified),
            Tlp::try_from(envelope.tlp).unwrap_or(Tlp::Unspecified),
        )
    }
}

/// Was the message placed in `participant`'s inbox (or sent by it)?
fn addressed_to(stored: &Stored, participant: &str) -> bool {
    stored.envelope.sender == participant
        || stored
            .receipt
            .placements
            .iter()
            .any(|p| p.recipient == participant)
}

/// The reader's view of a stored message.
fn view(stored: Stored, reader: &str) -> pb::StoredMessage {
    let inbox_no = stored
        .receipt
        .placements
        .iter()
        .find(|p| p.recipient == reader)
        .map_or(0, |p| p.inbox_no);
    pb::StoredMessage {
        envelope: Some(stored.envelope),
        seq: stored.receipt.seq,
        stored_at: stored.receipt.stored_at,
        envelope_sha256: stored.receipt.envelope_sha256,
        inbox_no,
    }
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
