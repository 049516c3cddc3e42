//! Who is calling: the organisation comes from the client certificate (URI SAN
//! `urn:ipex:participant:<id>`), checked against the participant registry. The certificate is
//! parsed once per connection ([`PeerCert`]); the registry is consulted on every call so that a
//! reloaded registry takes effect at once.

use crate::pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The URI SAN prefix that names a participant in its certificate.
pub const URI_SAN_PREFIX: &str = "urn:ipex:participant:";

/// The role of a participant, as the registry names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// A customs administration.
    #[default]
    Customs,
    /// A marketplace.
    Platform,
    /// An express carrier or postal operator.
    Carrier,
    /// A brand owner.
    RightHolder,
    /// INTERPOL, a RILO, the WCO.
    Partner,
}

impl Role {
    /// The proto enum value.
    pub fn to_pb(self) -> pb::Role {
        match self {
            Role::Customs => pb::Role::Customs,
            Role::Platform => pb::Role::Platform,
            Role::Carrier => pb::Role::Carrier,
            Role::RightHolder => pb::Role::RightHolder,
            Role::Partner => pb::Role::Partner,
        }
    }

    /// The name used in config files and messages, e.g. `RIGHT_HOLDER`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Customs => "CUSTOMS",
            Role::Platform => "PLATFORM",
            Role::Carrier => "CARRIER",
            Role::RightHolder => "RIGHT_HOLDER",
            Role::Partner => "PARTNER",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A registered organisation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Stable id, `[a-z0-9-]`, as in the certificate's URI SAN.
    pub id: String,
    /// What kind of organisation it is.
    pub role: Role,
    /// ISO 3166-1 alpha-2 country; empty for international organisations.
    #[serde(default)]
    pub country: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// When not empty, only certificates with one of these SHA-256 fingerprints (hex of the
    /// DER certificate) are accepted for this participant.
    #[serde(default)]
    pub pinned_sha256: Vec<String>,
    /// PEM files of the public keys that verify this participant's officer tokens (EdDSA,
    /// ES256, RS256/PS256), relative to the registry file.
    #[serde(default)]
    pub token_keys: Vec<PathBuf>,
    /// A JWKS file with more token verification keys, relative to the registry file.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// Whether every call must carry an officer token. Default: required outside development
    /// mode.
    #[serde(default)]
    pub require_token: Option<bool>,
    /// Whether tokens must be bound to the client certificate (`cnf` `x5t#S256`, RFC 8705).
    /// Default: required.
    #[serde(default)]
    pub require_token_binding: Option<bool>,
}

impl Participant {
    /// The proto view (without pins).
    pub fn to_pb(&self) -> pb::Participant {
        pb::Participant {
            id: self.id.clone(),
            role: self.role.to_pb() as i32,
            country: self.country.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

/// Errors loading the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read participant registry {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a registry.
    #[error("invalid participant registry {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    participant: Vec<Participant>,
    /// Certificates refused on every call, whoever they name (SHA-256 of the DER, hex).
    #[serde(default)]
    denied_sha256: Vec<String>,
}

/// The participant registry: who may connect and in which role.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Participants by id.
    by_id: BTreeMap<String, Arc<Participant>>,
    /// Fingerprints (lower-case hex) of certificates refused on every call.
    denied: std::collections::BTreeSet<String>,
    /// Token verification keys by participant id.
    token_keys: BTreeMap<String, Arc<crate::token::TokenKeys>>,
}

/// Normalises a SHA-256 fingerprint written as hex, with or without colons, in any case.
fn fingerprint(text: &str, field: &str) -> Result<String, String> {
    let normal = text.to_ascii_lowercase().replace(':', "");
    if normal.len() != 64 || !normal.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{field}: {text:?} is not 64 hex digits"));
    }
    Ok(normal)
}

impl Registry {
    /// Builds a registry, checking ids, countries and pins.
    pub fn new(participants: Vec<Participant>) -> Result<Registry, String> {
        let mut by_id = BTreeMap::new();
        for (i, mut p) in participants.into_iter().enumerate() {
            crate::model::vocab::participant_id(&p.id)
                .map_err(|e| format!("participant[{i}].id: {e}"))?;
            if !p.country.is_empty() {
                crate::model::vocab::country(&p.country)
                    .map_err(|e| format!("participant[{i}].country: {e}"))?;
            }
            for pin in &mut p.pinned_sha256 {
                *pin = fingerprint(pin, &format!("participant[{i}].pinned_sha256"))?;
            }
            let id = p.id.clone();
            if by_id.insert(id.clone(), Arc::new(p)).is_some() {
                return Err(format!("participant[{i}].id: {id:?} is listed twice"));
            }
        }
        Ok(Registry {
            by_id,
            denied: Default::default(),
            token_keys: BTreeMap::new(),
        })
    }

    /// Loads every participant's token keys, resolving relative paths against `base`.
    fn load_token_keys(mut self, base: &Path) -> Result<Registry, String> {
        for p in self.by_id.values() {
            let mut keys = crate::token::TokenKeys::default();
            for (i, file) in p.token_keys.iter().enumerate() {
                let path = base.join(file);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "participant {:?} token_keys[{i}]: {}: {e}",
                        p.id,
                        path.display()
                    )
                })?;
                keys.merge(crate::token::TokenKeys::from_pem(&[pem]).map_err(|e| {
                    format!(
                        "participant {:?} token_keys[{i}]: {}: {e}",
                        p.id,
                        path.display()
                    )
                })?);
            }
            if let Some(file) = &p.jwks {
                let path = base.join(file);
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| format!("participant {:?} jwks: {}: {e}", p.id, path.display()))?;
                keys.merge(crate::token::TokenKeys::from_jwks(&json).map_err(|e| {
                    format!("participant {:?} jwks: {}: {e}", p.id, path.display())
                })?);
            }
            if !keys.is_empty() {
                self.token_keys.insert(p.id.clone(), Arc::new(keys));
            }
        }
        Ok(self)
    }

    /// The token verification keys of a participant.
    pub fn token_keys(&self, id: &str) -> Option<&Arc<crate::token::TokenKeys>> {
        self.token_keys.get(id)
    }

    /// Every file the registry read (for change detection): token keys and JWKS files.
    pub fn key_files(&self, base: &Path) -> Vec<PathBuf> {
        self.by_id
            .values()
            .flat_map(|p| p.token_keys.iter().chain(p.jwks.iter()))
            .map(|f| base.join(f))
            .collect()
    }

    /// Refuses these certificates (SHA-256 fingerprints, hex) on every call.
    pub fn with_denied(mut self, denied: &[String]) -> Result<Registry, String> {
        for (i, text) in denied.iter().enumerate() {
            self.denied
                .insert(fingerprint(text, &format!("denied_sha256[{i}]"))?);
        }
        Ok(self)
    }

    /// Is this certificate on the deny list?
    pub fn is_denied(&self, fingerprint_hex: &str) -> bool {
        self.denied.contains(fingerprint_hex)
    }

    /// Parses a registry from TOML text (`[[participant]]` tables); token key files are read
    /// relative to `base`.
    pub fn from_toml_in(text: &str, origin: &str, base: &Path) -> Result<Registry, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        Registry::new(file.participant)
            .and_then(|r| r.with_denied(&file.denied_sha256))
            .and_then(|r| r.load_token_keys(base))
            .map_err(|message| RegistryError::Parse {
                path: origin.to_string(),
                message,
            })
    }

    /// Parses a registry from TOML text; token key files are read relative to the working
    /// directory.
    pub fn from_toml(text: &str, origin: &str) -> Result<Registry, RegistryError> {
        Registry::from_toml_in(text, origin, Path::new("."))
    }

    /// Loads a registry file; token key files are read relative to its directory.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Registry::from_toml_in(&text, &path.display().to_string(), &registry_dir(path))
    }

    /// The participant with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Participant>> {
        self.by_id.get(id)
    }

    /// Every participant, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Participant>> {
        self.by_id.values()
    }
}

/// The directory relative paths of a registry file are read from.
pub fn registry_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// What the gateway read from a client certificate, once per connection.
#[derive(Debug)]
pub struct PeerCert {
    /// SHA-256 of the DER certificate.
    pub fingerprint: [u8; 32],
    /// The participant id of the URI SAN, or why there is none.
    pub participant: Result<String, String>,
}

impl PeerCert {
    /// Reads the fingerprint and participant id of a DER certificate.
    pub fn from_der(der: &[u8]) -> PeerCert {
        PeerCert {
            fingerprint: Sha256::digest(der).into(),
            participant: participant_of(der),
        }
    }

    /// The fingerprint as lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

fn participant_of(der: &[u8]) -> Result<String, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subjectAltName: {e}"))?;
    let ids: Vec<&str> = san
        .iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(URI_SAN_PREFIX),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [id] => Ok(id.to_string()),
        [] => Err(format!(
            "the certificate has no URI SAN {URI_SAN_PREFIX}<id>"
        )),
        _ => Err("the certificate names more than one participant".to_string()),
    }
}

/// The connection a call arrived on: tonic puts it in every request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The client certificate, parsed.
    pub cert: Arc<PeerCert>,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The registered participant.
    pub participant: Arc<Participant>,
    /// SHA-256 of the client certificate.
    pub fingerprint: [u8; 32],
    /// Officer or system acting (token subject), when a token was presented.
    pub officer: Option<String>,
}

impl Caller {
    /// The participant id.
    pub fn id(&self) -> &str {
        &self.participant.id
    }
}

/// Why a caller is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The connection carries no client certificate (only possible on a misconfigured server).
    #[error("no client certificate was presented")]
    NoCertificate,
    /// The certificate does not name a participant.
    #[error("the client certificate names no participant: {0}")]
    NoParticipant(String),
    /// The certificate names a participant the registry does not know.
    #[error("participant {0:?} of the client certificate is not registered")]
    Unregistered(String),
    /// The certificate is on the registry's deny list.
    #[error("certificate {fingerprint} is revoked (on the registry's deny list)")]
    Revoked {
        /// SHA-256 of the certificate, hex.
        fingerprint: String,
    },
    /// The participant pins certificates and this one is not pinned.
    #[error("certificate {fingerprint} is not pinned for participant {participant:?}")]
    NotPinned {
        /// The participant.
        participant: String,
        /// SHA-256 of the presented certificate, hex.
        fingerprint: String,
    },
}

/// Identifies the caller of a connection against the registry.
pub fn authenticate(peer: Option<&PeerInfo>, registry: &Registry) -> Result<Caller, AuthError> {
    let peer = peer.ok_or(AuthError::NoCertificate)?;
    let fingerprint = peer.cert.fingerprint_hex();
    if registry.is_denied(&fingerprint) {
        return Err(AuthError::Revoked { fingerprint });
    }
    let id = peer
        .cert
        .participant
        .as_ref()
        .map_err(|why| AuthError::NoParticipant(why.clone()))?;
    let participant = registry
        .get(id)
        .ok_or_else(|| AuthError::Unregistered(id.clone()))?;
    if !participant.pinned_sha256.is_empty() && !participant.pinned_sha256.contains(&fingerprint) {
        return Err(AuthError::NotPinned {
            participant: id.clone(),
            fingerprint,
        });
    }
    Ok(Caller {
        participant: participant.clone(),
        fingerprint: peer.cert.fingerprint,
        officer: None,
    })
}
