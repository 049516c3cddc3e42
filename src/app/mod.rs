//! What the gateway does for each call, independent of gRPC: identify the caller, validate and
//! authorize what it sends, commit it, and decide what it may read. The tonic services of
//! [`crate::grpc`] only translate to and from this.
//!
//! - [`submit`] — `Submit`, `SubmitBatch`;
//! - `derive` — the listing alerts and seller matches a submitted message raises, stored in
//!   its commit;
//! - [`read`] — `Get`, `ListInbox`;
//! - [`search`] — `Search`;
//! - [`case`] — `GetCase`: the thread of messages linked to one;
//! - [`subscribe`] — `Subscribe`, `Ack`, and the live fan-out;
//! - [`audit`] — checkpoints, proofs and leaves of the exchange log;
//! - [`report`] — `GetTakedownTimes`: how long platforms took to act, with proofs;
//! - [`witness`] — the gateway as witness of its peers' logs (C2SP tlog-witness);
//!   [`witness_state`] — what the witness keeps, and the cosignatures peers gave the
//!   gateway's own checkpoints;
//! - [`forward`] — messages to and from participants of peer gateways: outboxes, what a
//!   peer's message becomes here, forwarding reports; [`peers`] — what the gateway keeps of
//!   its peers (their directories, their outboxes' depth);
//! - [`events`] — every audit event, built in one place;
//! - [`handshakes`] — refused handshakes, counted and summarised;
//! - [`error`] — what a call can fail with.
//!
//! Uses [`crate::storage`], [`crate::auth`], [`crate::log`], [`crate::domain`], [`crate::ops`]
//! and [`crate::pb`]. Never `tonic::Status`, metadata or a tonic stream type.

pub mod audit;
pub mod case;
mod derive;
pub mod error;
pub mod events;
pub mod forward;
pub mod handshakes;
pub mod peers;
pub mod read;
pub mod report;
pub mod search;
pub mod submit;
pub mod subscribe;
pub mod witness;
pub mod witness_state;

use crate::auth::identity::{authenticate, Caller, PeerInfo};
use crate::auth::registry::Registry;
use crate::auth::token::{Scope, TokenCache, TokenKeys, TokenPolicy};
use crate::domain::participant::Participant;
use crate::domain::policy::Policy;
use crate::log::note::NoteSigner;
use crate::ops::config::{Config, Sources};
use crate::pb::{self, Kind, Tlp};
use crate::storage::{Store, StoreOptions, Stored};
use arc_swap::ArcSwap;
use error::Error;
use std::path::Path;
use std::sync::Arc;

/// The current time in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The page size a request asks for: `requested`, `default` when 0; above `max` it is
/// refused, naming `limit`.
fn page_limit(requested: u32, default: u32, max: u32, v: &mut crate::domain::Violations) -> usize {
    match requested {
        0 => default as usize,
        n if n > max => {
            v.add("limit", format!("at most {max}"));
            n as usize
        }
        n => n as usize,
    }
}

/// Why the registry, the policy or the certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry could not be loaded.
    #[error(transparent)]
    Registry(#[from] crate::auth::registry::RegistryError),
    /// Certificates or CRLs could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::auth::tls::TlsError),
    /// The policy is invalid.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// A participant has the gateway's own id, which signs what the gateway raises.
    #[error(
        "gateway_id {0:?} is also a participant of the registry: the gateway sends the seller matches it raises under its id, so no participant may have it"
    )]
    GatewayIdTaken(String),
}

/// What a configuration puts in force besides itself: loaded the same way at start and on
/// every reload.
struct Loaded {
    registry: Registry,
    policy: Policy,
    tls: rustls::ServerConfig,
}

impl Loaded {
    fn from(config: &Config) -> Result<Loaded, LoadError> {
        let registry = Registry::load(&config.registry)?;
        if registry.get(&config.gateway_id).is_some() {
            return Err(LoadError::GatewayIdTaken(config.gateway_id.clone()));
        }
        Ok(Loaded {
            registry,
            policy: config.policy().map_err(LoadError::Policy)?,
            tls: crate::auth::tls::server_config(
                &config.tls.cert,
                &config.tls.key,
                &config.tls.client_ca,
                &config.tls.crls,
                &config
                    .peers
                    .iter()
                    .map(|peer| crate::auth::tls::PeerCa {
                        id: peer.id.clone(),
                        ca: peer.ca.clone(),
                    })
                    .collect::<Vec<_>>(),
            )?,
        })
    }
}

/// What a metrics scrape reads from `store`.
fn scraped_from(store: &Arc<Store>) -> crate::ops::metrics::Readings {
    let (size, seq, tree) = (store.clone(), store.clone(), store.clone());
    crate::ops::metrics::Readings {
        store_size_bytes: Box::new(move || match size.size_on_disk() {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the store's size");
                None
            }
        }),
        messages_stored: Box::new(move || seq.last_seq()),
        audit_tree_size: Box::new(move || tree.tree_size()),
        more: scrub_readings(store.scrub_stats()),
    }
}

/// The background check of the log, as gauges.
fn scrub_readings(
    stats: Arc<crate::storage::scrub::ScrubStats>,
) -> Vec<(
    &'static str,
    &'static str,
    crate::ops::metrics::MaybeReading,
)> {
    use std::sync::atomic::Ordering::Relaxed;
    let (a, b, c, d) = (stats.clone(), stats.clone(), stats.clone(), stats);
    vec![
        (
            "ipex_scrub_leaves_checked",
            "Leaves the background check of the whole log has re-hashed in its current or last run",
            Box::new(move || Some(a.leaves_checked.load(Relaxed))),
        ),
        (
            "ipex_scrub_runs",
            "Background checks of the whole log completed since start",
            Box::new(move || Some(b.runs.load(Relaxed))),
        ),
        (
            "ipex_scrub_failures",
            "Background checks of the whole log that found it damaged, since start",
            Box::new(move || Some(c.failures.load(Relaxed))),
        ),
        (
            "ipex_scrub_last_ok",
            "1 if the last background check of the whole log passed, 0 if it failed; absent before the first",
            Box::new(move || u64::try_from(d.last_ok.load(Relaxed)).ok()),
        ),
    ]
}

/// Loads the checkpoint signing key (a note `PRIVATE+KEY+…` line) from `path`; it must be
/// named `origin`.
fn load_signing_key(path: &Path, origin: &str) -> Result<NoteSigner, OpenError> {
    let err = |reason: String| OpenError::SigningKey {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let signer = NoteSigner::from_private_key(text.trim()).map_err(|e| err(e.to_string()))?;
    if signer.name() != origin {
        return Err(err(format!(
            "the key is named {:?} but audit.origin is {:?}",
            signer.name(),
            origin
        )));
    }
    Ok(signer)
}

/// Errors opening the gateway.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The gateway certificate or witness key of `[federation]`, or a peer.
    #[error("{0}")]
    Federation(String),
    /// The registry, the policy or the certificates.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The store could not be opened, or its audit log does not match its signed history.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: String,
        /// Why.
        source: crate::storage::OpenStoreError,
    },
    /// The checkpoint signing key could not be read.
    #[error("audit signing key {path}: {reason}")]
    SigningKey {
        /// The key file, or the configuration key that should name it.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The gateway's state, shared by all calls.
pub struct Gateway {
    /// What the configuration is built from, again on every reload.
    sources: Sources,
    /// The configuration in force: the keys a reload changes take their new values; the
    /// others ([`Config::keep_start_values`]) keep those of the start.
    config: ArcSwap<Config>,
    /// The participant registry in force.
    registry: ArcSwap<Registry>,
    /// The policy in force.
    policy: ArcSwap<Policy>,
    /// The message store; shared with the metrics, which read it when scraped.
    pub store: Arc<Store>,
    /// The TLS configuration new connections get; a reload swaps it.
    pub tls: Arc<ArcSwap<rustls::ServerConfig>>,
    /// Officer tokens already verified.
    tokens: crate::auth::token::TokenCache,
    /// Turns true when the gateway begins to shut down: subscription streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// Calls, refusals and streams counted for Prometheus.
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    /// The witness of the peers' logs, when the gateway has peers.
    witness: Option<witness_state::Witness>,
    /// The cosignatures peers gave this gateway's latest checkpoint.
    pub cosigned: witness_state::Cosigned,
    /// The peer gateways: their directories, their outboxes.
    pub peers: peers::Peers,
}

/// Why a reload was refused (the configuration in force stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration: file, environment or flags.
    #[error(transparent)]
    Config(#[from] crate::ops::config::ConfigError),
    /// The registry, the policy, the certificates or the CRLs.
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl Gateway {
    /// Loads the registry, the policy and the certificates, and opens the store. `config` is
    /// what `sources` built ([`Sources::build`]); a reload builds again from `sources`.
    pub fn open(sources: Sources, config: Config) -> Result<Gateway, OpenError> {
        let loaded = Loaded::from(&config)?;
        let store_error = |source: crate::storage::OpenStoreError| OpenError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| store_error(crate::storage::StoreError::Engine(e.to_string()).into()))?;
        let signing_key =
            config
                .audit
                .signing_key
                .as_deref()
                .ok_or_else(|| OpenError::SigningKey {
                    path: "audit.signing_key".into(),
                    reason: "not configured".into(),
                })?;
        let signer = load_signing_key(signing_key, &config.origin())?;
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
                live_buffer_bytes: config.subscriptions.live_buffer_bytes,
                cache_bytes: config.store.cache_bytes,
                message_cache_bytes: config.store.message_cache_bytes,
                segment_bytes: config.store.segment_bytes,
                quarantine: config.store.quarantine,
                index_flush_interval: std::time::Duration::from_millis(config.store.index_flush_ms),
                scrub_interval: (config.store.scrub_interval_secs > 0)
                    .then(|| std::time::Duration::from_secs(config.store.scrub_interval_secs)),
            },
            signer,
            Arc::new(events::Events),
        )
        .map_err(store_error)?;
        let store = Arc::new(store);
        let metrics = crate::ops::metrics::Metrics::new(store.commit_stats(), scraped_from(&store));
        let config_data_dir = config.data_dir.clone();
        let config_peer_ids: Vec<String> = config.peers.iter().map(|p| p.id.clone()).collect();
        let witness = match config.federation_files() {
            Some(files) if !config.peers.is_empty() => {
                let key =
                    witness_state::load_witness_key(&files.witness_key).map_err(|reason| {
                        OpenError::Federation(format!("federation.witness_key: {reason}"))
                    })?;
                Some(
                    witness_state::Witness::new(key, &config.peers)
                        .map_err(OpenError::Federation)?,
                )
            }
            _ => None,
        };
        Ok(Gateway {
            sources,
            config: ArcSwap::from_pointee(config),
            registry: ArcSwap::from_pointee(loaded.registry),
            policy: ArcSwap::from_pointee(loaded.policy),
            store,
            tls: Arc::new(ArcSwap::from_pointee(loaded.tls)),
            tokens: TokenCache::default(),
            closing: tokio::sync::watch::Sender::new(false),
            metrics: Arc::new(metrics),
            witness,
            cosigned: witness_state::Cosigned::default(),
            peers: peers::Peers::open(&config_data_dir, config_peer_ids),
        })
    }

    /// Builds the configuration again from its sources — the file (or the development
    /// configuration), the environment captured at start and the flags — re-reads the
    /// registry, the policy, the certificates and the CRLs it names, and puts them in force
    /// together. If anything is invalid, nothing changes and the error says what. Keys that
    /// take effect only at start keep their values; a reload that changes them says so in a
    /// warning naming them. Calls in flight and open streams are not disturbed; new calls see
    /// the new registry, policy and token limits, new connections the new certificates and
    /// CRLs; the files watched for changes are those of the new configuration.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut fresh = self.sources.build()?;
        let restart = self.config.load().keep_start_values(&mut fresh);
        let loaded = Loaded::from(&fresh)?;
        self.registry.store(Arc::new(loaded.registry));
        self.policy.store(Arc::new(loaded.policy));
        self.tls.store(Arc::new(loaded.tls));
        self.config.store(Arc::new(fresh));
        // Tokens verified with keys that may have been withdrawn are verified again.
        self.tokens.clear();
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "configuration changed in keys that take effect at the next start; their values in force stay"
            );
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Every file a reload reads, for change detection: those of the configuration in force.
    pub fn watched_files(&self) -> Vec<std::path::PathBuf> {
        let config = self.config.load();
        let mut files = config.watched_files();
        files.extend(
            self.registry()
                .key_files(&crate::auth::registry::registry_dir(&config.registry)),
        );
        files
    }

    /// Identifies the caller: the participant of the client certificate, and the officer of
    /// its bearer token, which must grant `scope` (when the call needs one).
    /// `authorization` is the value of the call's `authorization` metadata, if any.
    pub fn identify(
        &self,
        peer: Option<&PeerInfo>,
        authorization: Option<&str>,
        scope: Option<Scope>,
    ) -> Result<Caller, Error> {
        let registry = self.registry.load();
        let config = self.config.load();
        let mut caller = authenticate(peer, &registry)?;
        let participant = caller.participant.clone();
        let Some(header) = authorization else {
            if participant.require_token.unwrap_or(!config.dev_mode) {
                return Err(Error::TokenRequired(participant.id.clone()));
            }
            return Ok(caller);
        };
        let token = crate::auth::token::bearer(header)?;
        let empty = TokenKeys::default();
        let keys = registry.token_keys(&participant.id).map_or(&empty, |k| k);
        let mut policy = TokenPolicy::new(config.gateway_id.clone());
        policy.max_lifetime = std::time::Duration::from_secs(config.tokens.max_lifetime_secs);
        policy.leeway = std::time::Duration::from_secs(config.tokens.leeway_secs);
        policy.require_binding = participant.require_token_binding.unwrap_or(true);
        let officer = self.tokens.verify(
            token,
            &participant.id,
            keys,
            &caller.fingerprint,
            &policy,
            crate::auth::token::now_unix(),
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
        readable_by(
            &caller.participant,
            envelope,
            receipt,
            &self.registry.load(),
            &self.policy.load(),
        )
    }
}

/// TLP and policy: may `reader` read the message `envelope` stored with `receipt`?
fn readable_by(
    reader: &Participant,
    envelope: &pb::Envelope,
    receipt: &pb::Receipt,
    registry: &Registry,
    policy: &Policy,
) -> bool {
    addressed_to(envelope, receipt, &reader.id) || tlp_allows(reader, envelope, registry, policy)
}

/// TLP and policy, for a reader the message is not addressed to: may `reader` read
/// `envelope` all the same (a GREEN or CLEAR message the policy lets it receive)?
fn tlp_allows(
    reader: &Participant,
    envelope: &pb::Envelope,
    registry: &Registry,
    policy: &Policy,
) -> bool {
    policy.may_read(
        reader,
        &envelope.sender,
        registry.get(&envelope.sender).map(|p| p.role),
        &envelope.recipients,
        Kind::try_from(envelope.kind).unwrap_or(Kind::Unspecified),
        Tlp::try_from(envelope.tlp).unwrap_or(Tlp::Unspecified),
    )
}

impl crate::ops::reload::Reloadable for Gateway {
    fn reload(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Gateway::reload(self).map_err(Into::into)
    }

    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        Gateway::watched_files(self)
    }
}

/// Was the message placed in `participant`'s inbox (or sent by it)?
fn addressed_to(envelope: &pb::Envelope, receipt: &pb::Receipt, participant: &str) -> bool {
    envelope.sender == participant
        || receipt
            .placements
            .iter()
            .any(|p| p.recipient == participant)
        // A participant of a peer (`<id>@<gateway>`) has no inbox here: it is addressed by
        // the envelope.
        || (participant.contains('@') && envelope.recipients.iter().any(|r| r == participant))
}

/// The reader's view of a stored message.
/// The position of a message in `reader`'s inbox; 0 when it is not addressed to it.
pub(crate) fn inbox_no(receipt: &pb::Receipt, reader: &str) -> u64 {
    receipt
        .placements
        .iter()
        .find(|p| p.recipient == reader)
        .map_or(0, |p| p.inbox_no)
}

pub(crate) fn view(stored: Stored, reader: &str) -> pb::StoredMessage {
    let inbox_no = inbox_no(&stored.receipt, reader);
    pb::StoredMessage {
        envelope: Some(stored.envelope),
        seq: stored.receipt.seq,
        stored_at: stored.receipt.stored_at,
        envelope_sha256: stored.receipt.envelope_sha256,
        inbox_no,
    }
}
