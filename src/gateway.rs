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
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The policy is invalid.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The store could not be opened, or its audit log does not match its signed history.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: String,
        /// Why.
        source: crate::store::OpenStoreError,
    },
    /// The checkpoint signing key.
    #[error(transparent)]
    Audit(crate::audit::AuditError),
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
    /// The TLS configuration new connections get; a reload swaps it.
    pub tls: Arc<ArcSwap<rustls::ServerConfig>>,
    /// Officer tokens already verified.
    tokens: crate::token::TokenCache,
    /// Turns true when the gateway begins to shut down: subscription streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// Calls, refusals and streams counted for Prometheus.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Why a reload was refused (the configuration in force stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] crate::identity::RegistryError),
    /// The policy.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// Certificates or CRLs.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl Gateway {
    /// Loads the registry and policy and opens the store.
    pub fn open(config: Config) -> Result<Gateway, OpenError> {
        let registry = Registry::load(&config.registry)?;
        let policy = config.policy().map_err(OpenError::Policy)?;
        let tls = crate::tls::server_config(
            &config.tls.cert,
            &config.tls.key,
            &config.tls.client_ca,
            &config.tls.crls,
        )?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| OpenError::Store {
            dir: config.data_dir.display().to_string(),
            source: crate::store::StoreError::Engine(e.to_string()).into(),
        })?;
        let signing_key = config.audit.signing_key.clone().ok_or_else(|| {
            OpenError::Audit(crate::audit::AuditError::Key {
                path: "audit.signing_key".into(),
                reason: "not configured".into(),
            })
        })?;
        let signer =
            crate::audit::load_signing_key(&signing_key, &config.origin(), config.dev_mode)
                .map_err(OpenError::Audit)?;
        if signer.name() != config.origin() {
            return Err(OpenError::Audit(crate::audit::AuditError::Key {
                path: signing_key.display().to_string(),
                reason: format!(
                    "the key is named {:?} but audit.origin is {:?}",
                    signer.name(),
                    config.origin()
                ),
            }));
        }
        let store = Store::open(
            &config.data_dir,
            StoreOptions {
                max_batch: config.commit.max_batch,
                queue: config.commit.queue,
                checkpoint_interval: std::time::Duration::from_millis(
                    config.audit.checkpoint_interval_ms,
                ),
                verify_on_open: config.audit.verify_on_start,
                live_buffer: config.subscriptions.live_buffer,
            },
            signer,
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
            tls: Arc::new(ArcSwap::from_pointee(tls)),
            tokens: crate::token::TokenCache::default(),
            closing: tokio::sync::watch::Sender::new(false),
            metrics: Arc::default(),
        })
    }

    /// Re-reads the configuration file (if any), the registry, the policy, the certificates
    /// and the CRLs, and puts them in force together. If anything is invalid, nothing changes
    /// and the error says what. Calls in flight and open streams are not disturbed; new calls
    /// see the new registry and policy, new connections the new certificates and CRLs.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let fresh = match &self.config.file {
            Some(path) => crate::config::Config::load(path)?,
            None => self.config.clone(),
        };
        let registry = Registry::load(&fresh.registry)?;
        let policy = fresh.policy().map_err(ReloadError::Policy)?;
        let tls = crate::tls::server_config(
            &fresh.tls.cert,
            &fresh.tls.key,
            &fresh.tls.client_ca,
            &fresh.tls.crls,
        )?;
        self.registry.store(Arc::new(registry));
        self.policy.store(Arc::new(policy));
        self.tls.store(Arc::new(tls));
        // Tokens verified with keys that may have been withdrawn are verified again.
        self.tokens.clear();
        Ok(())
    }

    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Every file a reload reads, for change detection.
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let mut files = self.config.watched_files();
        files.extend(
            self.registry()
                .key_files(&crate::identity::registry_dir(&self.config.registry)),
        );
        files
    }

    /// Identifies the caller: the participant of the client certificate, and the officer of
    /// its bearer token, which must grant `scope` (when the call needs one).
    pub fn identify(
        &self,
        peer: Option<&PeerInfo>,
        metadata: &tonic::metadata::MetadataMap,
        scope: Option<crate::token::Scope>,
    ) -> Result<Caller, Error> {
        let registry = self.registry.load();
        let mut caller = authenticate(peer, &registry)?;
        let participant = caller.participant.clone();
        let header = metadata
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let Some(header) = header else {
            if participant.require_token.unwrap_or(!self.config.dev_mode) {
                return Err(Error::TokenRequired(participant.id.clone()));
            }
            return Ok(caller);
        };
        let token = crate::token::bearer(header)?;
        let empty = crate::token::TokenKeys::default();
        let keys = registry.token_keys(&participant.id).map_or(&empty, |k| k);
        let mut policy = crate::token::TokenPolicy::new(self.config.gateway_id.clone());
        policy.max_lifetime = std::time::Duration::from_secs(self.config.tokens.max_lifetime_secs);
        policy.leeway = std::time::Duration::from_secs(self.config.tokens.leeway_secs);
        policy.require_binding = participant.require_token_binding.unwrap_or(true);
        let officer = self.tokens.verify(
            token,
            &participant.id,
            keys,
            &caller.fingerprint,
            &policy,
            crate::token::now_unix(),
        )?;
        if let Some(scope) = scope {
            if !officer.has(scope) {
                return Err(Error::MissingScope {
                    officer: officer.subject,
                    scope,
                });
            }
        }
        caller.officer = Some(officer.subject);
        Ok(caller)
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
            return Err(Error::invalid(
                "envelopes",
                format!(
                    "1 to {MAX_BATCH} envelopes per batch, not {}",
                    envelopes.len()
                ),
            ));
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
        let answers = self.check_links(caller, envelope, path)?;

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
            kind,
            encoded,
            digest,
            deliver_to,
            officer: caller.officer.clone(),
            answers,
            index_prefixes: crate::search::index_prefixes(valid.envelope()),
            envelope: Arc::new(valid.into_inner()),
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
                answers =
                    self.check_answers(caller, envelope, Kind::TakedownNotice, path, &mut v)?
            }
            Some(Payload::DataResponse(_)) => {
                answers = self.check_answers(caller, envelope, Kind::DataRequest, path, &mut v)?
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
        answers: Kind,
        path: &str,
        v: &mut Violations,
    ) -> Result<Option<(String, u64)>, Error> {
        let Some(first) = envelope.refs.first() else {
            v.add(
                format!("{path}.refs"),
                format!("must ref the {} this answers", kind_name(answers)),
            );
            return Ok(None);
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

    /// The message `key` names, if the caller may read it.
    /// The read is recorded in the audit log before the message is returned.
    pub async fn get(
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
                return Err(Error::invalid("key", "is required: seq or ref"));
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
        self.record_read(caller, "Get", vec![stored.receipt.seq])
            .await?;
        Ok(view(stored, caller.id()))
    }

    /// Records that `caller` was given the messages `seqs`; waits until it is durable, so that
    /// nothing is disclosed without a log entry.
    pub(crate) async fn record_read(
        &self,
        caller: &Caller,
        method: &str,
        seqs: Vec<u64>,
    ) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.store
            .record(vec![pb::AuditLeaf {
                time: None,
                event: Some(pb::audit_leaf::Event::Read(pb::MessagesRead {
                    reader: caller.id().to_string(),
                    officer: caller.officer.clone().unwrap_or_default(),
                    method: method.to_string(),
                    seqs,
                })),
            }])
            .await?;
        Ok(())
    }

    /// A page of the caller's inbox; the page is recorded in the audit log as one read.
    pub async fn list_inbox(
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
        self.record_read(
            caller,
            "ListInbox",
            messages.iter().map(|m| m.seq).collect(),
        )
        .await?;
        Ok(pb::ListInboxResponse {
            messages,
            next_after,
            head,
        })
    }

    /// TLP and policy: may the caller read this stored message?
    pub fn may_read(&self, caller: &Caller, stored: &Stored) -> bool {
        self.may_read_parts(caller, &stored.envelope, &stored.receipt)
    }

    /// [`Gateway::may_read`] on an envelope and receipt held apart.
    pub fn may_read_parts(
        &self,
        caller: &Caller,
        envelope: &pb::Envelope,
        receipt: &pb::Receipt,
    ) -> bool {
        if addressed_to(envelope, receipt, caller.id()) {
            return true;
        }
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
fn addressed_to(envelope: &pb::Envelope, receipt: &pb::Receipt, participant: &str) -> bool {
    envelope.sender == participant
        || receipt
            .placements
            .iter()
            .any(|p| p.recipient == participant)
}

/// The reader's view of a stored message.
pub(crate) fn view(stored: Stored, reader: &str) -> pb::StoredMessage {
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

/// Most leaves per `GetLeaves` call.
pub const MAX_LEAVES: u64 = 1000;

/// The exchange log, as participants see it.
impl Gateway {
    /// The latest checkpoint, or a fresh one covering every leaf so far.
    pub async fn checkpoint(&self, refresh: bool) -> Result<pb::GetCheckpointResponse, Error> {
        let checkpoint = match self.store.latest_checkpoint() {
            Some(cp) if !refresh => (*cp).clone(),
            _ => self.store.checkpoint_now().await?,
        };
        Ok(pb::GetCheckpointResponse {
            checkpoint: checkpoint.note,
            tree_size: checkpoint.size,
            root_hash: checkpoint.root.to_vec(),
            verifier_key: self.store.verifier_key().to_string(),
        })
    }

    /// The size a proof request means: `requested`, or the latest checkpoint's when 0; it must
    /// lie within the durable log.
    fn proof_size(&self, requested: u64, field: &str) -> Result<u64, Error> {
        let size = match requested {
            0 => self.store.latest_checkpoint().map_or(0, |c| c.size),
            n => n,
        };
        let durable = self.store.tree_size();
        if size > durable {
            return Err(Error::invalid(
                field,
                format!("{size} is larger than the log ({durable} leaves)"),
            ));
        }
        Ok(size)
    }

    /// An inclusion proof.
    pub fn inclusion_proof(
        &self,
        request: pb::GetInclusionProofRequest,
    ) -> Result<pb::GetInclusionProofResponse, Error> {
        let size = self.proof_size(request.tree_size, "tree_size")?;
        if request.leaf_index >= size {
            return Err(Error::invalid(
                "leaf_index",
                format!("{} is not below the tree size {size}", request.leaf_index),
            ));
        }
        let proof = self.store.inclusion_proof(request.leaf_index, size)?;
        let leaf_hash = crate::audit::merkle::NodeSource::node(
            &crate::audit::KvNodes(self.store.kv()),
            0,
            request.leaf_index,
        )?;
        Ok(pb::GetInclusionProofResponse {
            leaf_index: request.leaf_index,
            tree_size: size,
            leaf_hash: leaf_hash.to_vec(),
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// A consistency proof.
    pub fn consistency_proof(
        &self,
        request: pb::GetConsistencyProofRequest,
    ) -> Result<pb::GetConsistencyProofResponse, Error> {
        let second = self.proof_size(request.second, "second")?;
        if request.first > second {
            return Err(Error::invalid(
                "first",
                format!("{} is larger than second ({second})", request.first),
            ));
        }
        let proof = self.store.consistency_proof(request.first, second)?;
        Ok(pb::GetConsistencyProofResponse {
            first: request.first,
            second,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// Leaves `[start, end)`: every hash, and the data of the leaves the caller is party to.
    pub fn leaves(
        &self,
        caller: &Caller,
        request: pb::GetLeavesRequest,
    ) -> Result<pb::GetLeavesResponse, Error> {
        let tree_size = self.store.tree_size();
        let mut v = Violations::default();
        if request.end <= request.start {
            v.add("end", "must be larger than start");
        } else if request.end - request.start > MAX_LEAVES {
            v.add("end", format!("at most {MAX_LEAVES} leaves per call"));
        }
        if request.start >= tree_size && request.end > request.start {
            v.add(
                "start",
                format!("{} is not below the tree size {tree_size}", request.start),
            );
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let leaves = self
            .store
            .leaves(request.start, request.end)?
            .into_iter()
            .map(|(index, hash, data)| pb::LogLeaf {
                index,
                leaf_hash: hash.to_vec(),
                data: if crate::audit::is_party(&data, caller.id()) {
                    data
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(pb::GetLeavesResponse { leaves, tree_size })
    }

    /// Records a refused call in the audit log, without waiting for the write.
    pub fn record_refusal(&self, refusal: pb::CallRefused) {
        let leaf = pb::AuditLeaf {
            time: None,
            event: Some(pb::audit_leaf::Event::Refused(refusal)),
        };
        if !self.store.record_later(vec![leaf]) {
            tracing::warn!("audit queue full or closed: a refusal was not recorded");
        }
    }
}

/// Longest durable subscription name.
pub const MAX_SUBSCRIPTION_NAME: usize = 64;

/// Subscriptions.
impl Gateway {
    /// Ends every subscription stream (with UNAVAILABLE, so clients reconnect elsewhere).
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Starts a subscription: what is stored from the chosen start, then live messages.
    pub async fn subscribe(
        self: &Arc<Self>,
        caller: Caller,
        request: pb::SubscribeRequest,
    ) -> Result<crate::fanout::DeliveryStream, Error> {
        let mut v = Violations::default();
        let filter = crate::filter::MessageFilter::parse(request.filter.as_ref(), "filter")
            .unwrap_or_else(|e| {
                v.append(e);
                Default::default()
            });
        let durable = (!request.durable_name.is_empty()).then_some(request.durable_name.as_str());
        if let Some(name) = durable {
            check_subscription_name(name, "durable_name", &mut v);
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        // Subscribe to the live ring before choosing the start, so nothing falls between.
        let live = self.store.live();
        let requested = match request.start {
            Some(pb::subscribe_request::Start::FromSeq(seq)) => seq.max(1),
            Some(pb::subscribe_request::Start::Latest(_)) | None => self.store.last_seq() + 1,
        };
        let next = match durable {
            Some(name) => {
                let (acked, _) = self
                    .store
                    .set_cursor(caller.id(), name, requested - 1, true, None)
                    .await?;
                acked + 1
            }
            None => requested,
        };
        tracing::info!(
            participant = caller.id(),
            durable = durable.unwrap_or(""),
            from_seq = next,
            "subscribed"
        );
        Ok(crate::fanout::spawn(
            self.clone(),
            caller,
            filter,
            next,
            live,
            self.closing.subscribe(),
        ))
    }

    /// Acknowledges a durable subscription's deliveries up to a sequence number, durably and
    /// with one audit leaf.
    pub async fn ack(
        &self,
        caller: &Caller,
        request: pb::AckRequest,
    ) -> Result<pb::AckResponse, Error> {
        let mut v = Violations::default();
        check_subscription_name(&request.name, "name", &mut v);
        let last = self.store.last_seq();
        if request.up_to_seq > last {
            v.add(
                "up_to_seq",
                format!("{} is beyond the last message ({last})", request.up_to_seq),
            );
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        if self.store.cursor(caller.id(), &request.name)?.is_none() {
            return Err(Error::NotFound(format!(
                "no durable subscription {:?} of {}",
                request.name,
                caller.id()
            )));
        }
        let leaf = pb::AuditLeaf {
            time: None,
            event: Some(pb::audit_leaf::Event::Acked(pb::SubscriptionAcked {
                participant: caller.id().to_string(),
                officer: caller.officer.clone().unwrap_or_default(),
                name: request.name.clone(),
                up_to_seq: request.up_to_seq,
            })),
        };
        let (acked_seq, leaf_index) = self
            .store
            .set_cursor(
                caller.id(),
                &request.name,
                request.up_to_seq,
                false,
                Some(leaf),
            )
            .await?;
        Ok(pb::AckResponse {
            acked_seq,
            leaf_index: leaf_index.unwrap_or_default(),
        })
    }
}

fn check_subscription_name(name: &str, field: &str, v: &mut Violations) {
    if name.is_empty()
        || name.len() > MAX_SUBSCRIPTION_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        v.add(
            field,
            format!("{name:?} must be 1 to {MAX_SUBSCRIPTION_NAME} characters of [A-Za-z0-9._-]"),
        );
    }
}
