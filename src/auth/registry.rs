//! The participant registry: who may connect and in which role, which certificates are
//! pinned or denied, and which keys sign each participant's officer tokens. Read from a TOML
//! file at start and on every reload.

use super::token::TokenKeys;
use crate::domain::participant::{Participant, Role};
use crate::domain::signature::PublicKey;
use crate::domain::vocab;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    token_keys: BTreeMap<String, Arc<TokenKeys>>,
    /// The platform whose listings are on each host of a registry `domains` list.
    platform_by_host: BTreeMap<String, String>,
    /// Envelope signature verification keys by participant id.
    signing_keys: BTreeMap<String, Arc<[PublicKey]>>,
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
    /// Builds a registry, checking ids, countries, pins and platform domains.
    pub fn new(participants: Vec<Participant>) -> Result<Registry, String> {
        let mut by_id = BTreeMap::new();
        let mut platform_by_host = BTreeMap::new();
        for (i, mut p) in participants.into_iter().enumerate() {
            if !p.domains.is_empty() && p.role != Role::Platform {
                return Err(format!(
                    "participant[{i}].domains: only a PLATFORM participant lists the hosts of its listings, not a {}",
                    p.role
                ));
            }
            if p.listing_alerts.is_some() && p.role != Role::Customs {
                return Err(format!(
                    "participant[{i}].listing_alerts: only a CUSTOMS participant raises listing alerts, not a {}",
                    p.role
                ));
            }
            for (j, domain) in p.domains.iter_mut().enumerate() {
                *domain = vocab::host(domain)
                    .map_err(|e| format!("participant[{i}].domains[{j}]: {e}"))?;
                if let Some(other) = platform_by_host.insert(domain.clone(), p.id.clone()) {
                    return Err(format!(
                        "participant[{i}].domains[{j}]: {domain:?} is already a domain of {other:?}"
                    ));
                }
            }
            vocab::participant_id(&p.id).map_err(|e| format!("participant[{i}].id: {e}"))?;
            if !p.country.is_empty() {
                vocab::country(&p.country).map_err(|e| format!("participant[{i}].country: {e}"))?;
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
            platform_by_host,
            signing_keys: BTreeMap::new(),
        })
    }

    /// Loads every participant's token keys, resolving relative paths against `base`.
    fn load_token_keys(mut self, base: &Path) -> Result<Registry, String> {
        for p in self.by_id.values() {
            let mut keys = TokenKeys::default();
            for (i, file) in p.token_keys.iter().enumerate() {
                let path = base.join(file);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "participant {:?} token_keys[{i}]: {}: {e}",
                        p.id,
                        path.display()
                    )
                })?;
                keys.merge(TokenKeys::from_pem(&[pem]).map_err(|e| {
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
                keys.merge(TokenKeys::from_jwks(&json).map_err(|e| {
                    format!("participant {:?} jwks: {}: {e}", p.id, path.display())
                })?);
            }
            if !keys.is_empty() {
                self.token_keys.insert(p.id.clone(), Arc::new(keys));
            }
        }
        Ok(self)
    }

    /// Loads every participant's signing keys, resolving relative paths against `base`.
    fn load_signing_keys(mut self, base: &Path) -> Result<Registry, String> {
        for p in self.by_id.values() {
            let mut keys = Vec::with_capacity(p.signing_keys.len());
            for (i, file) in p.signing_keys.iter().enumerate() {
                let path = base.join(file);
                let at = || {
                    format!(
                        "participant {:?} signing_keys[{i}]: {}",
                        p.id,
                        path.display()
                    )
                };
                let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", at()))?;
                keys.push(PublicKey::from_pem(&pem).map_err(|e| format!("{}: {e}", at()))?);
            }
            if p.require_signature == Some(true) && keys.is_empty() {
                return Err(format!(
                    "participant {:?}: require_signature = true needs at least one signing_keys file",
                    p.id
                ));
            }
            if !keys.is_empty() {
                self.signing_keys.insert(p.id.clone(), keys.into());
            }
        }
        Ok(self)
    }

    /// The keys that verify a participant's envelope signatures (empty: none registered).
    pub fn signing_keys(&self, id: &str) -> &[PublicKey] {
        self.signing_keys.get(id).map(|k| &k[..]).unwrap_or(&[])
    }

    /// The token verification keys of a participant.
    pub fn token_keys(&self, id: &str) -> Option<&Arc<TokenKeys>> {
        self.token_keys.get(id)
    }

    /// Every file the registry read (for change detection): token keys, JWKS files and
    /// signing keys.
    pub fn key_files(&self, base: &Path) -> Vec<PathBuf> {
        self.by_id
            .values()
            .flat_map(|p| {
                p.token_keys
                    .iter()
                    .chain(p.jwks.iter())
                    .chain(p.signing_keys.iter())
            })
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
            .and_then(|r| r.load_signing_keys(base))
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

    /// The platform on whose hosts (registry `domains`) `url` lies: its host is one of them
    /// or a subdomain of one. None for a URL that does not parse.
    pub fn platform_of_url(&self, url: &str) -> Option<&Arc<Participant>> {
        let parsed = url::Url::parse(url).ok()?;
        let mut host = parsed.host_str()?;
        loop {
            if let Some(id) = self.platform_by_host.get(host) {
                return self.get(id);
            }
            host = host.split_once('.')?.1;
        }
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
