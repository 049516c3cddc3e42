//! Gateway configuration: every key is documented here and in the README.
//!
//! A configuration is built by one function, [`Sources::build`], from three sources, each
//! overriding the one before:
//!
//! 1. a TOML file ([`Base::File`]) or, without one, the development configuration
//!    ([`Base::Given`], [`crate::dev::config`]);
//! 2. the environment: `IPEX_<KEY>` for a top-level key, `IPEX_<SECTION>__<KEY>` for a key of
//!    a section (`IPEX_TLS__CRLS`, `IPEX_TOKENS__LEEWAY_SECS`). Every key can be set so; none
//!    is listed by hand: which names are keys, and what type each has, is read from the
//!    [`Config`] type itself;
//! 3. `ipexd`'s flags ([`Flags`]).
//!
//! The gateway keeps its [`Sources`] and builds again from them on every reload, so that an
//! override from the environment or a flag holds across reloads. The environment is the one
//! captured at start ([`environment`]): a process's environment cannot be changed from
//! outside. Keys that take effect only at start keep their start values across reloads
//! ([`Config::keep_start_values`]).

use crate::domain::policy::{Policy, Rule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "IPEX_";

/// `IPEX_…` variables that are not configuration: `ipexd`'s flags that choose the sources or
/// the log, and the `ipex` client's, which may share the gateway's environment (a health probe
/// in the same container). They are never read as keys, nor reported as unknown.
pub const NOT_CONFIGURATION: &[&str] = &[
    "IPEX_CONFIG",
    "IPEX_LOG_FORMAT",
    "IPEX_DEV_CERTS_DIR",
    "IPEX_GATEWAY",
    "IPEX_AS",
    "IPEX_CERT",
    "IPEX_KEY",
    "IPEX_CA",
    "IPEX_TOKEN",
    "IPEX_SERVER_NAME",
];

/// Errors building the configuration; each names where the value at fault was set (file,
/// environment variable or flag) and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A value is missing, unknown or invalid.
    #[error("invalid configuration from {origin}: {message}")]
    Invalid {
        /// Where the value was set: `file <path>`, `environment variable IPEX_…`, `flag --…`
        /// or `the development configuration`.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The gateway configuration.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics listener (plain HTTP, `GET /metrics`); `None` turns
    /// it off. Off unless set, except in the development configuration ([`Config::dev`]),
    /// where it is `127.0.0.1:9464`.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the sled store; created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// This gateway's id: the audience of officer tokens and the origin of its checkpoints.
    #[serde(default = "default_gateway_id")]
    pub gateway_id: String,
    /// Development mode: creates the development PKI, registry and checkpoint key in the
    /// directory of `tls.client_ca` if they are missing.
    #[serde(default)]
    pub dev_mode: bool,
    /// Largest accepted request message, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Deadline of a TLS handshake, in milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// On SIGTERM or SIGINT, how long calls in flight may take to finish, in milliseconds;
    /// after it the gateway flushes its store and exits anyway, with a warning.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Path of the participant registry (TOML, `[[participant]]` tables).
    pub registry: PathBuf,
    /// Certificates.
    pub tls: TlsConfig,
    /// Group commit tuning.
    #[serde(default)]
    pub commit: CommitConfig,
    /// The exchange log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Replaces the built-in policy table when given.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Officer tokens.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// Subscriptions.
    #[serde(default)]
    pub subscriptions: SubscriptionsConfig,
    /// The store.
    #[serde(default)]
    pub store: StoreConfig,
    /// Limits on what clients that are not yet identified may cost the gateway.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Cross-platform seller matching.
    #[serde(default)]
    pub matching: MatchingConfig,
    /// This gateway as a peer of other gateways: its gateway certificate and witness key.
    #[serde(default)]
    pub federation: FederationConfig,
    /// The peer gateways (`[[peers]]` tables).
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// How often to look for changed registry, policy, certificate, CRL and token key files
    /// and reload them, in milliseconds; 0 turns the check off (SIGHUP still reloads).
    #[serde(default = "default_reload_check_ms")]
    pub reload_check_ms: u64,
    /// The file this configuration was read from, re-read on reload.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Certificate files, PEM.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The gateway's certificate chain.
    pub cert: PathBuf,
    /// The gateway's private key.
    pub key: PathBuf,
    /// CA certificates that issue participant (client) certificates.
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM) checked during every handshake; re-read on reload.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

/// Group commit tuning.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommitConfig {
    /// Most messages written and flushed together.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Submissions that may wait for the committer before callers wait too.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            max_batch: default_max_batch(),
            queue: default_queue(),
        }
    }
}

/// The store: the exchange log's segment files and the index beside them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The index's page cache (sled), in bytes.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
    /// Messages kept decoded for subscribers that replay or follow the log, in bytes: each
    /// message is read from the log and decoded once for all of them.
    #[serde(default = "default_message_cache_bytes")]
    pub message_cache_bytes: u64,
    /// Size after which the log begins a new segment file, in bytes.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// How often the index is made durable, in milliseconds (what a crash takes from it is
    /// replayed from the log at the next start).
    #[serde(default = "default_index_flush_ms")]
    pub index_flush_ms: u64,
    /// How often the whole log is checked in the background, in seconds; 0: never.
    #[serde(default = "default_scrub_interval_secs")]
    pub scrub_interval_secs: u64,
    /// At start, move a damaged end of the last log segment aside (into `quarantine/` in the
    /// data directory) instead of refusing to start.
    #[serde(default)]
    pub quarantine: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: default_cache_bytes(),
            message_cache_bytes: default_message_cache_bytes(),
            segment_bytes: default_segment_bytes(),
            index_flush_ms: default_index_flush_ms(),
            scrub_interval_secs: default_scrub_interval_secs(),
            quarantine: false,
        }
    }
}

fn default_cache_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_message_cache_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_index_flush_ms() -> u64 {
    1000
}
fn default_scrub_interval_secs() -> u64 {
    24 * 3600
}

/// Subscriptions.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Messages kept in memory for live subscribers (shared by all); a subscriber further
    /// behind reads from the store until it has caught up.
    #[serde(default = "default_live_buffer")]
    pub live_buffer: usize,
    /// Bytes of envelopes kept in memory for live subscribers (shared by all): the ring holds
    /// at most `live_buffer` messages and at most this many bytes, whichever is reached first.
    #[serde(default = "default_live_buffer_bytes")]
    pub live_buffer_bytes: usize,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            live_buffer: default_live_buffer(),
            live_buffer_bytes: default_live_buffer_bytes(),
        }
    }
}

fn default_live_buffer() -> usize {
    1024
}
fn default_live_buffer_bytes() -> usize {
    64 * 1024 * 1024
}

/// Seller matching: a seller flag or seizure whose seller pseudonym (or seller id on one
/// platform) an earlier seizure or another platform's flag named raises a seller match for
/// the participants that may read both.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    /// Whether the gateway matches sellers at all; an operator without a legal basis for
    /// matching pseudonymised seller data turns it off.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        MatchingConfig { enabled: true }
    }
}

/// This gateway as a peer of other gateways.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// This gateway's gateway certificate (PEM, URI SAN `urn:ipex:gateway:<gateway_id>`,
    /// client authentication), presented to peers when it calls them. Required when
    /// `[[peers]]` are configured; created in development mode.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The witness's cosigning key (`PRIVATE+KEY+<name>+<key id>+<base64>`, C2SP
    /// tlog-cosignature Ed25519). Required when `[[peers]]` are configured; created in
    /// development mode, named `<audit origin>/witness`.
    #[serde(default)]
    pub witness_key: Option<PathBuf>,
    /// How often to ask the peers to cosign the latest checkpoint, in milliseconds.
    #[serde(default = "default_cosign_interval_ms")]
    pub cosign_interval_ms: u64,
    /// Deadline of one call to a peer, in milliseconds.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u64,
    /// Most messages waiting in the outbox to one peer; a message for a peer whose outbox
    /// is full is refused (`RESOURCE_EXHAUSTED`), so a peer that stays down cannot fill the
    /// disk.
    #[serde(default = "default_outbox_max_messages")]
    pub outbox_max_messages: u64,
    /// How often to fetch the peers' directories of participants, in milliseconds.
    #[serde(default = "default_directory_interval_ms")]
    pub directory_interval_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            cert: None,
            key: None,
            witness_key: None,
            cosign_interval_ms: default_cosign_interval_ms(),
            peer_timeout_ms: default_peer_timeout_ms(),
            outbox_max_messages: default_outbox_max_messages(),
            directory_interval_ms: default_directory_interval_ms(),
        }
    }
}

fn default_cosign_interval_ms() -> u64 {
    1000
}
fn default_peer_timeout_ms() -> u64 {
    5000
}
fn default_outbox_max_messages() -> u64 {
    100_000
}
fn default_directory_interval_ms() -> u64 {
    10_000
}

/// The files a gateway peers with ([`Config::federation_files`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationFiles {
    /// The gateway certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The witness key.
    pub witness_key: PathBuf,
}

/// A peer gateway.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's gateway id: its gateway certificate names `urn:ipex:gateway:<id>`.
    pub id: String,
    /// Where it listens: `https://host:port`.
    pub address: String,
    /// The CA (PEM) that issues the peer's gateway certificate and its server certificate. A
    /// certificate naming this peer is accepted only when this CA issued it.
    pub ca: PathBuf,
    /// The peer's checkpoint verifier key (`<origin>+<key id>+<base64>`): this gateway
    /// witnesses that log, and cosigns only checkpoints it signed.
    pub checkpoint_key: String,
    /// The peer's witness key (`<name>+<key id>+<base64>`, type 0x04): when set, this gateway
    /// asks the peer to cosign its checkpoints and checks the cosignatures with it.
    #[serde(default)]
    pub witness_key: Option<String>,
    /// The name the peer's server certificate must carry; the address's host when unset.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Whether GREEN and CLEAR broadcasts (seizure alerts) of this gateway's participants go
    /// to this peer too, for its participants its policy lets receive them. Default: false.
    #[serde(default)]
    pub broadcasts: bool,
}

/// Limits on connections and handshakes, which anyone who can reach the port can open.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Refused TLS handshakes are counted, by reason, source address and certificate, and
    /// written to the exchange log as one summary per this many milliseconds (and at
    /// shutdown), instead of one leaf each.
    #[serde(default = "default_handshake_summary_interval_ms")]
    pub handshake_summary_interval_ms: u64,
    /// Connections one source address may hold open at once, handshakes included; more are
    /// closed as they arrive.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// TLS handshakes one source address may have in progress at once; more connections are
    /// closed as they arrive.
    #[serde(default = "default_max_handshakes_per_source")]
    pub max_handshakes_per_source: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            handshake_summary_interval_ms: default_handshake_summary_interval_ms(),
            max_connections_per_source: default_max_connections_per_source(),
            max_handshakes_per_source: default_max_handshakes_per_source(),
        }
    }
}

fn default_handshake_summary_interval_ms() -> u64 {
    60_000
}
fn default_max_connections_per_source() -> usize {
    256
}
fn default_max_handshakes_per_source() -> usize {
    32
}

/// Officer tokens (JWT, `authorization: Bearer …`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Longest accepted token lifetime: `exp` at most this many seconds ahead.
    #[serde(default = "default_max_lifetime_secs")]
    pub max_lifetime_secs: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            max_lifetime_secs: default_max_lifetime_secs(),
            leeway_secs: default_leeway_secs(),
        }
    }
}

fn default_max_lifetime_secs() -> u64 {
    3600
}
fn default_leeway_secs() -> u64 {
    30
}

/// The exchange log.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The checkpoint signing key (a note signer key, `PRIVATE+KEY+<name>+…`). In development
    /// mode it is created if missing; otherwise it must exist.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Origin line of checkpoints, and the name of the signing key.
    #[serde(default)]
    pub origin: Option<String>,
    /// A new checkpoint at least this often while leaves arrive, in milliseconds.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// On start, verify the last signed checkpoint against the tree's tiles and re-hash the
    /// leaves written after it; a mismatch stops the gateway. The whole log is checked by
    /// `ipex audit verify --full` and by the background check (`store.scrub_interval_secs`).
    #[serde(default = "default_true")]
    pub verify_on_start: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key: None,
            origin: None,
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
            verify_on_start: true,
        }
    }
}

/// A policy table replacing the built-in one.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The rules: `{ from = "CUSTOMS", kind = "SEIZURE_NOTIFICATION", to = ["PARTNER"] }`.
    pub rules: Vec<Rule>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_gateway_id() -> String {
    "ipex-dev".to_string()
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_reload_check_ms() -> u64 {
    5000
}
fn default_checkpoint_interval_ms() -> u64 {
    1000
}
fn default_true() -> bool {
    true
}
fn default_max_batch() -> usize {
    512
}
fn default_queue() -> usize {
    4096
}

impl Config {
    /// A configuration with every default, the given registry, certificates and checkpoint
    /// signing key.
    pub fn new(registry: PathBuf, tls: TlsConfig, signing_key: PathBuf) -> Config {
        Config {
            listen: default_listen(),
            metrics_listen: None,
            data_dir: default_data_dir(),
            gateway_id: default_gateway_id(),
            dev_mode: false,
            max_message_bytes: default_max_message_bytes(),
            handshake_timeout_ms: default_handshake_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            registry,
            tls,
            commit: CommitConfig::default(),
            audit: AuditConfig {
                signing_key: Some(signing_key),
                ..AuditConfig::default()
            },
            policy: None,
            tokens: TokensConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            matching: MatchingConfig::default(),
            federation: FederationConfig::default(),
            peers: Vec::new(),
            reload_check_ms: default_reload_check_ms(),
            file: None,
        }
    }

    /// Parses a configuration from TOML text alone (no environment, no flags); `origin`
    /// names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let base_origin = format!("file {origin}");
        let table = parse_table(text, &base_origin)?;
        finish(table, &base_origin, &BTreeMap::new())
    }

    /// Keeps in `fresh`, a configuration built for a reload, this configuration's values of
    /// the keys that take effect only at start, and returns the names of those that differ.
    ///
    /// Reloaded: `registry`, `[tls]` (certificate, key, client CA, CRLs), `[policy]`,
    /// `[tokens]`, `[matching]`. Kept until the next start, because what they set is built once when the
    /// gateway starts: `listen`, `metrics_listen`, `data_dir`, `[commit]`, `[audit]` (the
    /// listeners and the store), `[subscriptions]` (the store's ring), `[limits]` (the
    /// acceptor and the handshake summary), `[federation]` and `[[peers]]` (the connections
    /// to peers and the witness), `gateway_id` (the default checkpoint origin), `dev_mode`, `max_message_bytes` (the
    /// decoder's ceiling), `handshake_timeout_ms` (the acceptor), `shutdown_grace_ms` and
    /// `reload_check_ms`.
    pub fn keep_start_values(&self, fresh: &mut Config) -> Vec<&'static str> {
        // Every field is named here, so that a new one must be put on one side or the other.
        let Config {
            registry: _,
            tls: _,
            policy: _,
            tokens: _,
            file: _,
            listen: _,
            metrics_listen: _,
            data_dir: _,
            gateway_id: _,
            dev_mode: _,
            max_message_bytes: _,
            handshake_timeout_ms: _,
            shutdown_grace_ms: _,
            reload_check_ms: _,
            commit: _,
            audit: _,
            subscriptions: _,
            store: _,
            limits: _,
            matching: _,
            federation: _,
            peers: _,
        } = self;
        let mut changed = Vec::new();
        macro_rules! keep {
            ($($name:literal => $field:ident),* $(,)?) => {$(
                if fresh.$field != self.$field {
                    changed.push($name);
                    fresh.$field = self.$field.clone();
                }
            )*};
        }
        keep!(
            "listen" => listen,
            "metrics_listen" => metrics_listen,
            "data_dir" => data_dir,
            "gateway_id" => gateway_id,
            "dev_mode" => dev_mode,
            "max_message_bytes" => max_message_bytes,
            "handshake_timeout_ms" => handshake_timeout_ms,
            "shutdown_grace_ms" => shutdown_grace_ms,
            "reload_check_ms" => reload_check_ms,
            "[commit]" => commit,
            "[audit]" => audit,
            "[subscriptions]" => subscriptions,
            "[store]" => store,
            "[limits]" => limits,
            "[federation]" => federation,
            "[[peers]]" => peers,
        );
        changed
    }

    /// The files a reload re-reads, for change detection.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.file.iter().cloned().collect();
        files.push(self.registry.clone());
        files.extend([
            self.tls.cert.clone(),
            self.tls.key.clone(),
            self.tls.client_ca.clone(),
        ]);
        files.extend(self.tls.crls.iter().cloned());
        files
    }

    /// Checks values serde cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.max_message_bytes < 1024 {
            return Err("max_message_bytes: must be at least 1024".into());
        }
        if self.subscriptions.live_buffer < 16 {
            return Err("subscriptions.live_buffer: must be at least 16".into());
        }
        if self.subscriptions.live_buffer_bytes < 1024 * 1024 {
            return Err("subscriptions.live_buffer_bytes: must be at least 1048576 (1 MiB)".into());
        }
        if self.limits.handshake_summary_interval_ms == 0 {
            return Err("limits.handshake_summary_interval_ms: must be at least 1".into());
        }
        if self.limits.max_connections_per_source == 0 {
            return Err("limits.max_connections_per_source: must be at least 1".into());
        }
        if self.limits.max_handshakes_per_source == 0 {
            return Err("limits.max_handshakes_per_source: must be at least 1".into());
        }
        if self.tokens.max_lifetime_secs == 0 {
            return Err("tokens.max_lifetime_secs: must be at least 1".into());
        }
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err("metrics_listen: must differ from listen".into());
        }
        if self.handshake_timeout_ms == 0 {
            return Err("handshake_timeout_ms: must be at least 1".into());
        }
        if self.shutdown_grace_ms == 0 {
            return Err("shutdown_grace_ms: must be at least 1".into());
        }
        if self.commit.max_batch == 0 {
            return Err("commit.max_batch: must be at least 1".into());
        }
        if self.commit.queue == 0 {
            return Err("commit.queue: must be at least 1".into());
        }
        if self.store.cache_bytes < 1024 * 1024 {
            return Err("store.cache_bytes: must be at least 1048576 (1 MiB)".into());
        }
        if !(1024 * 1024..=2 * 1024 * 1024 * 1024).contains(&self.store.segment_bytes) {
            return Err("store.segment_bytes: must be 1 MiB to 2 GiB".into());
        }
        if self.store.index_flush_ms == 0 {
            return Err("store.index_flush_ms: must be at least 1".into());
        }
        crate::domain::vocab::participant_id(&self.gateway_id)
            .map_err(|e| format!("gateway_id: {e}"))?;
        if self.audit.signing_key.is_none() && !self.dev_mode {
            return Err("audit.signing_key: required outside development mode".into());
        }
        if self.audit.checkpoint_interval_ms == 0 {
            return Err("audit.checkpoint_interval_ms: must be at least 1".into());
        }
        let origin = self.origin();
        if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
            return Err(format!(
                "audit.origin: {origin:?} must be non-empty, without spaces or '+'"
            ));
        }
        self.policy()?;
        self.check_peers()?;
        Ok(())
    }

    /// Checks `[federation]` and `[[peers]]`.
    fn check_peers(&self) -> Result<(), String> {
        if self.federation.cosign_interval_ms == 0 {
            return Err("federation.cosign_interval_ms: must be at least 1".into());
        }
        if self.federation.peer_timeout_ms == 0 {
            return Err("federation.peer_timeout_ms: must be at least 1".into());
        }
        if self.federation.outbox_max_messages == 0 {
            return Err("federation.outbox_max_messages: must be at least 1".into());
        }
        if self.federation.directory_interval_ms == 0 {
            return Err("federation.directory_interval_ms: must be at least 1".into());
        }
        if self.peers.is_empty() {
            return Ok(());
        }
        if !self.dev_mode {
            for (key, value) in [
                ("federation.cert", &self.federation.cert),
                ("federation.key", &self.federation.key),
                ("federation.witness_key", &self.federation.witness_key),
            ] {
                if value.is_none() {
                    return Err(format!("{key}: required when [[peers]] are configured"));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let at = |key: &str| format!("peers[{i}].{key}");
            crate::domain::vocab::participant_id(&peer.id)
                .map_err(|e| format!("{}: {e}", at("id")))?;
            if peer.id == self.gateway_id {
                return Err(format!(
                    "{}: {:?} is this gateway's own id",
                    at("id"),
                    peer.id
                ));
            }
            if !seen.insert(peer.id.as_str()) {
                return Err(format!("{}: {:?} is listed twice", at("id"), peer.id));
            }
            let url =
                url::Url::parse(&peer.address).map_err(|e| format!("{}: {e}", at("address")))?;
            if url.scheme() != "https" || url.host_str().is_none() {
                return Err(format!("{}: must be https://host:port", at("address")));
            }
            // The keys are checked where they are parsed, at start (app and server).
        }
        Ok(())
    }

    /// The gateway certificate, its key and the witness key in force: those of
    /// `[federation]`, or, for a key left unset in development mode, the development PKI's
    /// beside `tls.client_ca`. `None` when one is missing.
    pub fn federation_files(&self) -> Option<FederationFiles> {
        let dev = self
            .tls
            .client_ca
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let pick = |set: &Option<PathBuf>, file: &str| {
            set.clone()
                .or_else(|| self.dev_mode.then(|| dev.join(file)))
        };
        Some(FederationFiles {
            cert: pick(&self.federation.cert, "gateway.pem")?,
            key: pick(&self.federation.key, "gateway.key")?,
            witness_key: pick(&self.federation.witness_key, "witness.key")?,
        })
    }

    /// The checkpoint origin: `audit.origin`, or `ipex.local/<gateway_id>`.
    pub fn origin(&self) -> String {
        self.audit
            .origin
            .clone()
            .unwrap_or_else(|| format!("ipex.local/{}", self.gateway_id))
    }

    /// The policy in force: the configured table, or the built-in one.
    pub fn policy(&self) -> Result<Policy, String> {
        match &self.policy {
            Some(p) => Policy::new(p.rules.clone()),
            None => Ok(Policy::default()),
        }
    }
}

/// Where a configuration comes from: what the gateway keeps to build it again, the same way,
/// on every reload.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The file, or the development configuration.
    pub base: Base,
    /// The environment, as captured at start ([`environment`]): only the variables named
    /// `IPEX_…` are read. A process's environment cannot be changed from outside, so a reload
    /// uses this copy; to change an override, restart.
    pub env: Vec<(String, String)>,
    /// The flags, as given at start.
    pub flags: Flags,
}

/// The lowest layer of a configuration.
#[derive(Clone, Debug)]
pub enum Base {
    /// A TOML file, read again on every build.
    File(PathBuf),
    /// A configuration given whole, for a gateway without a file: the development
    /// configuration ([`crate::dev::config`]), or one a test or a benchmark builds.
    Given(Box<Config>),
}

/// `ipexd`'s flags that set configuration keys; they override the file and the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--listen`: `listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`: `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--metrics-listen`: `metrics_listen`.
    pub metrics_listen: Option<SocketAddr>,
}

/// A configuration given whole, without environment or flags: a reload re-reads the files it
/// names (registry, certificates, CRLs) and keeps the rest.
impl From<Config> for Sources {
    fn from(config: Config) -> Sources {
        Sources {
            base: Base::Given(Box::new(config)),
            env: Vec::new(),
            flags: Flags::default(),
        }
    }
}

/// The `IPEX_…` variables of this process, for [`Sources::env`]. A value that is not valid
/// Unicode is taken with its invalid bytes replaced.
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

impl Sources {
    /// The configuration of a file, with these environment variables and flags.
    pub fn file(path: impl Into<PathBuf>, env: Vec<(String, String)>, flags: Flags) -> Sources {
        Sources {
            base: Base::File(path.into()),
            env,
            flags,
        }
    }

    /// The `IPEX_…` variables of [`Sources::env`] that set no key and are none of
    /// [`NOT_CONFIGURATION`]: most likely misspelt (`IPEX_TLS_CERT` for `IPEX_TLS__CERT`).
    /// [`Sources::build`] ignores them; `ipexd` names them in a warning.
    pub fn ignored_variables(&self) -> Vec<&str> {
        self.env
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                name.strip_prefix(ENV_PREFIX)
                    .is_some_and(|rest| !NOT_CONFIGURATION.contains(name) && !names_a_key(rest))
            })
            .collect()
    }

    /// Builds the configuration: the file (or the given configuration), overridden by the
    /// environment, overridden by the flags; then deserialized once, so that a value from any
    /// source is read and checked like one in the file. Errors name the key and where its
    /// value was set.
    ///
    /// An `IPEX_…` variable is configuration when its name, lowercased, with `__` between a
    /// section and its key, names a key or a section of [`Config`]; a variable naming a
    /// section's key that does not exist, a section itself or a key below a scalar is refused.
    /// Other variables (`IPEX_CONFIG`, `IPEX_LOG_FORMAT`, `IPEX_DEV_CERTS_DIR`, the `ipex`
    /// client's `IPEX_GATEWAY`, `IPEX_CERT`, …) are not configuration and are left alone, and
    /// so is a variable set to the empty string. Values: numbers and `true`/`false` as
    /// written; strings and paths verbatim (surrounding spaces trimmed); lists as a TOML array
    /// (`["a.pem", "b.pem"]`, also for `policy.rules` as inline tables) or as items separated
    /// by commas (`a.pem,b.pem`).
    pub fn build(&self) -> Result<Config, ConfigError> {
        let (mut table, base_origin, file) = match &self.base {
            Base::File(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: name.clone(),
                    source,
                })?;
                let origin = format!("file {name}");
                (parse_table(&text, &origin)?, origin, Some(path.clone()))
            }
            Base::Given(config) => {
                let origin = "the development configuration".to_string();
                let table = match toml::Value::try_from(config.as_ref()) {
                    Ok(toml::Value::Table(table)) => table,
                    Ok(_) => unreachable!("a struct serializes as a table"),
                    Err(e) => {
                        return Err(ConfigError::Invalid {
                            origin,
                            message: e.to_string(),
                        })
                    }
                };
                (table, origin, config.file.clone())
            }
        };
        let mut origins = BTreeMap::new();
        for (name, value) in &self.env {
            overlay_variable(&mut table, &mut origins, name, value)?;
        }
        overlay_flags(&mut table, &mut origins, &self.flags)?;
        let mut config = finish(table, &base_origin, &origins)?;
        config.file = file;
        Ok(config)
    }
}

/// Where a key's value was set, when not in the base.
type Origins = BTreeMap<String, String>;

/// The keys of [`Config`] and the type of each, as JSON: an object for a section, `null` for
/// an optional scalar. Read from the type itself, so that a new key can be set from the
/// environment without being listed anywhere.
static SHAPE: LazyLock<serde_json::Value> = LazyLock::new(|| {
    let tls = TlsConfig {
        cert: PathBuf::new(),
        key: PathBuf::new(),
        client_ca: PathBuf::new(),
        crls: Vec::new(),
    };
    let mut config = Config::new(PathBuf::new(), tls, PathBuf::new());
    // An optional section shows its keys only when present.
    config.policy = Some(PolicyConfig { rules: Vec::new() });
    serde_json::to_value(&config).expect("a configuration serializes")
});

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Invalid {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Puts the value of the environment variable `name`, if it is configuration, into `table`.
fn overlay_variable(
    table: &mut toml::Table,
    origins: &mut Origins,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    if value.trim().is_empty() || NOT_CONFIGURATION.contains(&name) || !names_a_key(rest) {
        return Ok(());
    }
    let path: Vec<String> = rest
        .to_ascii_lowercase()
        .split("__")
        .map(str::to_string)
        .collect();
    let key = path.join(".");
    let invalid = |message: String| ConfigError::Invalid {
        origin: format!("environment variable {name}"),
        message,
    };
    let mut shape = &*SHAPE;
    for (depth, segment) in path.iter().enumerate() {
        let serde_json::Value::Object(keys) = shape else {
            let parent = path[..depth].join(".");
            return Err(invalid(format!("{parent}: not a section, it has no keys")));
        };
        shape = match keys.get(segment) {
            Some(shape) => shape,
            None => {
                let section = path[..depth].join(".");
                return Err(invalid(format!("{key}: unknown key of [{section}]")));
            }
        };
    }
    let value = typed(shape, value.trim(), name).map_err(|m| invalid(format!("{key}: {m}")))?;
    set(table, &path, value).map_err(invalid)?;
    origins.insert(key, format!("environment variable {name}"));
    Ok(())
}

/// Whether `rest`, a variable's name after `IPEX_`, starts with a top-level key or section of
/// [`Config`] (`TLS__CRLS`: `tls`); a variable that does not is not configuration.
fn names_a_key(rest: &str) -> bool {
    let first = rest.split("__").next().unwrap_or_default();
    SHAPE
        .as_object()
        .is_some_and(|keys| keys.contains_key(&first.to_ascii_lowercase()))
}

/// An environment value as the type the key has.
fn typed(shape: &serde_json::Value, raw: &str, name: &str) -> Result<toml::Value, String> {
    use serde_json::Value as Json;
    match shape {
        Json::Bool(_) => match raw {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        Json::Number(n) if n.is_f64() => raw
            .parse()
            .map(toml::Value::Float)
            .map_err(|_| format!("{raw:?} is not a number")),
        Json::Number(_) => raw
            .parse()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{raw:?} is not a whole number")),
        Json::String(_) | Json::Null => Ok(toml::Value::String(raw.to_string())),
        Json::Array(_) if raw.starts_with('[') => {
            let mut parsed: toml::Table = toml::from_str(&format!("list = {raw}"))
                .map_err(|e| format!("{raw:?} is not a TOML array: {}", e.message()))?;
            Ok(parsed.remove("list").expect("parsed as a key"))
        }
        Json::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        )),
        Json::Object(_) => Err(format!(
            "a section, not a key: set its keys as {name}__<KEY>"
        )),
    }
}

/// Sets `path` (section names, then the key) in `table`, creating sections as needed.
fn set(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (key, sections) = path.split_last().expect("a path has a key");
    let mut table = table;
    for (depth, section) in sections.iter().enumerate() {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(inner) => inner,
            _ => {
                let name = path[..=depth].join(".");
                return Err(format!("{name}: must be a section, not a value"));
            }
        };
    }
    table.insert(key.clone(), value);
    Ok(())
}

fn overlay_flags(
    table: &mut toml::Table,
    origins: &mut Origins,
    flags: &Flags,
) -> Result<(), ConfigError> {
    let mut put = |key: &str, flag: &str, value: String| {
        table.insert(key.to_string(), toml::Value::String(value));
        origins.insert(key.to_string(), format!("flag {flag}"));
    };
    if let Some(listen) = flags.listen {
        put("listen", "--listen", listen.to_string());
    }
    if let Some(addr) = flags.metrics_listen {
        put("metrics_listen", "--metrics-listen", addr.to_string());
    }
    if let Some(dir) = &flags.data_dir {
        let dir = dir.to_str().ok_or_else(|| ConfigError::Invalid {
            origin: "flag --data-dir".into(),
            message: format!("data_dir: {} is not valid Unicode", dir.display()),
        })?;
        put("data_dir", "--data-dir", dir.to_string());
    }
    Ok(())
}

/// Deserializes the merged table and checks it; an error is attributed to the source that
/// set the key at fault (`origins`), or else to the base.
fn finish(table: toml::Table, base: &str, origins: &Origins) -> Result<Config, ConfigError> {
    let origin_of = |path: &str| -> String {
        let mut key = path;
        loop {
            if let Some(origin) = origins.get(key) {
                return origin.clone();
            }
            match key.rfind(['.', '[']) {
                Some(end) => key = &key[..end],
                None => return base.to_string(),
            }
        }
    };
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            // The message alone: the path says where.
            let inner = e.into_inner();
            let inner = inner.message().trim_end();
            let message = if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            };
            ConfigError::Invalid {
                origin: origin_of(&path),
                message,
            }
        })?;
    config.check().map_err(|message| {
        let key = message.split(':').next().unwrap_or_default();
        ConfigError::Invalid {
            origin: origin_of(key),
            message,
        }
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sample() -> Config {
        let tls = TlsConfig {
            cert: "server.pem".into(),
            key: "server.key".into(),
            client_ca: "ca.pem".into(),
            crls: Vec::new(),
        };
        Config::new("registry.toml".into(), tls, "audit.key".into())
    }

    /// Builds `sample()` with these variables.
    fn with_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Sources {
            base: Base::Given(Box::new(sample())),
            env: vars(pairs),
            flags: Flags::default(),
        }
        .build()
    }

    /// A file in a temporary directory, with the required keys and `extra`.
    fn file_with(extra: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipexd.toml");
        std::fs::write(
            &path,
            format!(
                "registry = \"registry.toml\"\n\n[audit]\nsigning_key = \"audit.key\"\n\n\
                 [tls]\ncert = \"server.pem\"\nkey = \"server.key\"\nclient_ca = \"ca.pem\"\n{extra}"
            ),
        )
        .unwrap();
        (dir, path)
    }

    #[test]
    fn environment_overrides_keys_and_names_bad_values() {
        let config = with_env(&[
            ("IPEX_MAX_MESSAGE_BYTES", "65536"),
            ("IPEX_TOKENS__MAX_LIFETIME_SECS", "900"),
            ("IPEX_AUDIT__VERIFY_ON_START", "false"),
            ("IPEX_TLS__CERT", "/etc/ipex/gw.pem"),
            ("IPEX_GATEWAY", "https://elsewhere:1"), // the client's, ignored
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(config.max_message_bytes, 65536);
        assert_eq!(config.tokens.max_lifetime_secs, 900);
        assert!(!config.audit.verify_on_start);
        assert_eq!(config.tls.cert, PathBuf::from("/etc/ipex/gw.pem"));

        let err = with_env(&[("IPEX_COMMIT__MAX_BATCH", "many")]).unwrap_err();
        assert!(err.to_string().contains("IPEX_COMMIT__MAX_BATCH"), "{err}");
        // Values are checked like the file's.
        let err = with_env(&[("IPEX_MAX_MESSAGE_BYTES", "10")]).unwrap_err();
        assert!(err.to_string().contains("max_message_bytes"), "{err}");
        assert!(err.to_string().contains("IPEX_MAX_MESSAGE_BYTES"), "{err}");
    }

    /// Lists and keys nobody listed by hand: `tls.crls`, `policy.rules`, the optional
    /// `metrics_listen` and `audit.origin`, the flags' keys.
    #[test]
    fn every_key_can_be_set_from_the_environment() {
        let config = with_env(&[
            ("IPEX_TLS__CRLS", "/etc/ipex/a.crl.pem, /etc/ipex/b.crl.pem"),
            ("IPEX_LISTEN", "0.0.0.0:7000"),
            ("IPEX_METRICS_LISTEN", "127.0.0.1:9999"),
            ("IPEX_DATA_DIR", "/var/lib/ipex"),
            ("IPEX_AUDIT__ORIGIN", "gw.example/ipex"),
            ("IPEX_SUBSCRIPTIONS__LIVE_BUFFER", "64"),
            (
                "IPEX_POLICY__RULES",
                r#"[{ from = "CUSTOMS", kind = "SEIZURE_NOTIFICATION", to = ["PARTNER"] }]"#,
            ),
        ])
        .unwrap();
        assert_eq!(
            config.tls.crls,
            [
                PathBuf::from("/etc/ipex/a.crl.pem"),
                PathBuf::from("/etc/ipex/b.crl.pem")
            ]
        );
        assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9999".parse().unwrap())
        );
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/ipex"));
        assert_eq!(config.origin(), "gw.example/ipex");
        assert_eq!(config.subscriptions.live_buffer, 64);
        assert_eq!(config.policy.as_ref().unwrap().rules.len(), 1);

        let config = with_env(&[("IPEX_TLS__CRLS", r#"["one.pem", "two.pem"]"#)]).unwrap();
        assert_eq!(
            config.tls.crls,
            [PathBuf::from("one.pem"), PathBuf::from("two.pem")]
        );
        let err = with_env(&[("IPEX_POLICY__RULES", r#"[{ from = "WIZARD" }]"#)]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("IPEX_POLICY__RULES"), "{err}");
        assert!(err.contains("policy.rules"), "{err}");
    }

    /// `IPEX_TLS__CRLS` sets the whole list of CRLs, replacing the file's; a bad value is
    /// refused naming the variable and the key.
    #[test]
    fn crls_from_the_environment() {
        let (_dir, path) = file_with("crls = [\"file.crl.pem\"]\n");
        let build = |value: &str| {
            Sources::file(&path, vars(&[("IPEX_TLS__CRLS", value)]), Flags::default()).build()
        };
        let file_only = Sources::file(&path, Vec::new(), Flags::default())
            .build()
            .unwrap();
        assert_eq!(file_only.tls.crls, [PathBuf::from("file.crl.pem")]);

        let config = build("/etc/ipex/a.crl.pem,/etc/ipex/b.crl.pem").unwrap();
        assert_eq!(
            config.tls.crls,
            [
                PathBuf::from("/etc/ipex/a.crl.pem"),
                PathBuf::from("/etc/ipex/b.crl.pem")
            ]
        );
        let config = build(r#"["/etc/ipex/c.crl.pem"]"#).unwrap();
        assert_eq!(config.tls.crls, [PathBuf::from("/etc/ipex/c.crl.pem")]);
        // The CRLs are watched files: the list in force is the environment's.
        assert!(config
            .watched_files()
            .contains(&PathBuf::from("/etc/ipex/c.crl.pem")));
        assert!(!config
            .watched_files()
            .contains(&PathBuf::from("file.crl.pem")));

        for bad in [r#"["a.pem", 7]"#, r#"["a.pem""#] {
            let err = build(bad).unwrap_err().to_string();
            assert!(
                err.contains("environment variable IPEX_TLS__CRLS"),
                "{bad}: {err}"
            );
            assert!(err.contains("tls.crls"), "{bad}: {err}");
        }
    }

    /// The variables that are not configuration never collide with a key, and neither they
    /// nor the keys are reported as ignored; the others are.
    #[test]
    fn ignored_variables_are_those_naming_no_key() {
        for name in NOT_CONFIGURATION {
            assert!(
                !names_a_key(name.strip_prefix(ENV_PREFIX).unwrap()),
                "{name}"
            );
        }
        let mut env = vars(&[
            ("IPEX_TLS__CRLS", "a.pem"),
            ("IPEX_REGISTRY", "r.toml"),
            ("IPEX_TLS_CERT", "x.pem"),
            ("IPEX_REGISTY", "r.toml"),
            ("PATH", "/usr/bin"),
        ]);
        env.extend(
            NOT_CONFIGURATION
                .iter()
                .map(|n| (n.to_string(), "x".to_string())),
        );
        let sources = Sources::file("ipexd.toml", env, Flags::default());
        assert_eq!(
            sources.ignored_variables(),
            ["IPEX_TLS_CERT", "IPEX_REGISTY"]
        );
    }

    /// What is not configuration is left alone; what looks like it but names nothing is
    /// refused, naming the variable.
    #[test]
    fn other_variables_are_left_alone_and_typos_in_sections_refused() {
        let sample = sample();
        let config = with_env(&[
            ("IPEX_CONFIG", "/etc/ipex/ipexd.toml"),
            ("IPEX_LOG_FORMAT", "json"),
            ("IPEX_DEV_CERTS_DIR", "certs/dev"),
            ("IPEX_GATEWAY", "https://127.0.0.1:50051"),
            ("IPEX_AS", "customs-nl"),
            ("IPEX_CERT", "probe.pem"),
            ("IPEX_KEY", "probe.key"),
            ("IPEX_CA", "ca.pem"),
            ("IPEX_SERVER_NAME", "localhost"),
            ("IPEX_TOKEN", "eyJ..."),
            ("IPEX_BENCH_LEAVES", "10"),
            // Empty: as if unset.
            ("IPEX_REGISTRY", ""),
        ])
        .unwrap();
        assert_eq!(config, sample);

        for (name, value, named) in [
            ("IPEX_TLS__CRT", "x.pem", "tls.crt"),
            ("IPEX_TLS", "x.pem", "IPEX_TLS__<KEY>"),
            ("IPEX_LISTEN__PORT", "1", "listen"),
            (
                "IPEX_AUDIT__VERIFY_ON_START",
                "yes",
                "audit.verify_on_start",
            ),
            ("IPEX_LISTEN", "nowhere", "listen"),
        ] {
            let err = with_env(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
            assert!(err.contains(named), "{name}: {err}");
        }
    }

    /// Flags over the environment over the file; errors name the file, the variable or the
    /// flag.
    #[test]
    fn flags_over_environment_over_file() {
        let (_dir, path) = file_with("");
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap() + "\n[commit]\nqueue = 7\n",
        )
        .unwrap();
        let env = vars(&[
            ("IPEX_LISTEN", "127.0.0.1:7001"),
            ("IPEX_DATA_DIR", "from-env"),
            ("IPEX_COMMIT__MAX_BATCH", "9"),
        ]);
        let flags = Flags {
            listen: Some("127.0.0.1:7002".parse().unwrap()),
            ..Flags::default()
        };
        let config = Sources::file(&path, env.clone(), flags).build().unwrap();
        assert_eq!(config.listen, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("from-env"));
        assert_eq!(config.commit.max_batch, 9);
        assert_eq!(config.commit.queue, 7);
        assert_eq!(config.file.as_deref(), Some(path.as_path()));

        // The file's own errors name the file and the key; unknown keys are refused.
        let (_dir, bad) = file_with("crl = [\"x.pem\"]\n");
        let err = Sources::file(&bad, Vec::new(), Flags::default())
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
        assert!(err.contains("crl"), "{err}");
        let (_dir, bad) = file_with("\n[commit]\nmax_batch = \"many\"\n");
        let err = Sources::file(&bad, Vec::new(), Flags::default())
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("commit.max_batch"), "{err}");
        assert!(err.contains("file "), "{err}");
        // A value from the environment overrides a bad one of the file.
        let fixed = vars(&[("IPEX_COMMIT__MAX_BATCH", "3")]);
        let config = Sources::file(&bad, fixed, Flags::default())
            .build()
            .unwrap();
        assert_eq!(config.commit.max_batch, 3);

        // A check that fails on a flag's value names the flag.
        let flags = Flags {
            listen: Some("127.0.0.1:7003".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:7003".parse().unwrap()),
            ..Flags::default()
        };
        let err = Sources::file(&path, Vec::new(), flags)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--metrics-listen"), "{err}");
    }

    /// A configuration given whole comes back unchanged, however complete.
    #[test]
    fn a_given_configuration_builds_unchanged() {
        let mut config = sample();
        config.metrics_listen = Some("127.0.0.1:9464".parse().unwrap());
        config.tls.crls = vec!["a.crl.pem".into()];
        config.audit.origin = Some("gw.example/x".into());
        config.policy = Some(PolicyConfig {
            rules: Policy::default().rules().to_vec(),
        });
        assert_eq!(Sources::from(config.clone()).build().unwrap(), config);
    }

    #[test]
    fn restart_keys_keep_their_start_values() {
        let start = sample();
        let mut fresh = sample();
        fresh.registry = "other.toml".into();
        fresh.tokens.leeway_secs = 5;
        fresh.listen = "127.0.0.1:1".parse().unwrap();
        fresh.audit.checkpoint_interval_ms = 7;
        let changed = start.keep_start_values(&mut fresh);
        assert_eq!(changed, ["listen", "[audit]"]);
        assert_eq!(fresh.listen, start.listen);
        assert_eq!(fresh.audit, start.audit);
        assert_eq!(fresh.registry, PathBuf::from("other.toml"));
        assert_eq!(fresh.tokens.leeway_secs, 5);
        assert!(start.keep_start_values(&mut fresh).is_empty());
    }
}
