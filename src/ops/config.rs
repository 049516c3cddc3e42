//! Gateway configuration: one TOML file, every key documented here and in the README, with
//! environment overrides. Without a file the gateway runs in development mode
//! ([`crate::dev::config`]).

use crate::domain::policy::{Policy, Rule};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors reading the configuration; each names the key or file at fault.
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
    /// The file is not valid (the message names the key).
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The gateway configuration.
#[derive(Clone, Debug, Deserialize)]
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
    /// How often to look for changed registry, policy, certificate, CRL and token key files
    /// and reload them, in milliseconds; 0 turns the check off (SIGHUP still reloads).
    #[serde(default = "default_reload_check_ms")]
    pub reload_check_ms: u64,
    /// The file this configuration was read from, re-read on reload.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Certificate files, PEM.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
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

/// Subscriptions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Messages kept in memory for live subscribers (shared by all); a subscriber further
    /// behind reads from the store until it has caught up.
    #[serde(default = "default_live_buffer")]
    pub live_buffer: usize,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            live_buffer: default_live_buffer(),
        }
    }
}

fn default_live_buffer() -> usize {
    1024
}

/// Officer tokens (JWT, `authorization: Bearer …`).
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
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
    /// On start, recompute every leaf hash and tree node and compare the root with the last
    /// signed checkpoint; a mismatch stops the gateway.
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
#[derive(Clone, Debug, Deserialize)]
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
            reload_check_ms: default_reload_check_ms(),
            file: None,
        }
    }

    /// Parses a configuration from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Loads a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::from_toml(&text, &path.display().to_string())?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Applies `IPEX_<KEY>` environment overrides (`IPEX_<SECTION>__<KEY>` for keys of a
    /// section, e.g. `IPEX_TOKENS__MAX_LIFETIME_SECS`) to the scalar keys, then checks the
    /// result. Variables that name no key are left alone (the `ipex` client has its own);
    /// `IPEX_LISTEN`, `IPEX_DATA_DIR` and `IPEX_METRICS_LISTEN` are `ipexd`'s flags.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
            value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a valid value"))
        }
        let invalid = |message: String| ConfigError::Invalid {
            path: "the environment".into(),
            message,
        };
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("IPEX_") else {
                continue;
            };
            let n = name.as_str();
            let v = value.as_str();
            let applied: Result<(), String> = match key {
                "GATEWAY_ID" => parse(n, v).map(|x| self.gateway_id = x),
                "DEV_MODE" => parse(n, v).map(|x| self.dev_mode = x),
                "MAX_MESSAGE_BYTES" => parse(n, v).map(|x| self.max_message_bytes = x),
                "HANDSHAKE_TIMEOUT_MS" => parse(n, v).map(|x| self.handshake_timeout_ms = x),
                "SHUTDOWN_GRACE_MS" => parse(n, v).map(|x| self.shutdown_grace_ms = x),
                "REGISTRY" => parse(n, v).map(|x| self.registry = x),
                "RELOAD_CHECK_MS" => parse(n, v).map(|x| self.reload_check_ms = x),
                "TLS__CERT" => parse(n, v).map(|x| self.tls.cert = x),
                "TLS__KEY" => parse(n, v).map(|x| self.tls.key = x),
                "TLS__CLIENT_CA" => parse(n, v).map(|x| self.tls.client_ca = x),
                "COMMIT__MAX_BATCH" => parse(n, v).map(|x| self.commit.max_batch = x),
                "COMMIT__QUEUE" => parse(n, v).map(|x| self.commit.queue = x),
                "AUDIT__SIGNING_KEY" => parse(n, v).map(|x| self.audit.signing_key = Some(x)),
                "AUDIT__ORIGIN" => parse(n, v).map(|x| self.audit.origin = Some(x)),
                "AUDIT__CHECKPOINT_INTERVAL_MS" => {
                    parse(n, v).map(|x| self.audit.checkpoint_interval_ms = x)
                }
                "AUDIT__VERIFY_ON_START" => parse(n, v).map(|x| self.audit.verify_on_start = x),
                "TOKENS__MAX_LIFETIME_SECS" => {
                    parse(n, v).map(|x| self.tokens.max_lifetime_secs = x)
                }
                "TOKENS__LEEWAY_SECS" => parse(n, v).map(|x| self.tokens.leeway_secs = x),
                "SUBSCRIPTIONS__LIVE_BUFFER" => {
                    parse(n, v).map(|x| self.subscriptions.live_buffer = x)
                }
                _ => Ok(()),
            };
            applied.map_err(invalid)?;
        }
        self.check().map_err(invalid)
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
        Ok(())
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

    #[test]
    fn environment_overrides_keys_and_names_bad_values() {
        let mut config = sample();
        config
            .apply_env(vars(&[
                ("IPEX_MAX_MESSAGE_BYTES", "65536"),
                ("IPEX_TOKENS__MAX_LIFETIME_SECS", "900"),
                ("IPEX_AUDIT__VERIFY_ON_START", "false"),
                ("IPEX_TLS__CERT", "/etc/ipex/gw.pem"),
                ("IPEX_GATEWAY", "https://elsewhere:1"), // the client's, ignored
                ("PATH", "/usr/bin"),
            ]))
            .unwrap();
        assert_eq!(config.max_message_bytes, 65536);
        assert_eq!(config.tokens.max_lifetime_secs, 900);
        assert!(!config.audit.verify_on_start);
        assert_eq!(config.tls.cert, PathBuf::from("/etc/ipex/gw.pem"));

        let err = sample()
            .apply_env(vars(&[("IPEX_COMMIT__MAX_BATCH", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("IPEX_COMMIT__MAX_BATCH"), "{err}");
        // Values are checked like the file's.
        let err = sample()
            .apply_env(vars(&[("IPEX_MAX_MESSAGE_BYTES", "10")]))
            .unwrap_err();
        assert!(err.to_string().contains("max_message_bytes"), "{err}");
    }
}
