//! Who is calling: the organisation comes from the client certificate (URI SAN
//! `urn:ipex:participant:<id>`), checked against the participant registry. The certificate is
//! parsed once per connection ([`PeerCert`]); the registry is consulted on every call so that a
//! reloaded registry takes effect at once.

use super::registry::Registry;
use crate::domain::participant::Participant;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The URI SAN prefix that names a participant in its certificate.
pub const URI_SAN_PREFIX: &str = "urn:ipex:participant:";

/// The URI SAN prefix that names a peer gateway in its gateway certificate.
pub const GATEWAY_URI_SAN_PREFIX: &str = "urn:ipex:gateway:";

/// The SHA-256 of a DER certificate: its fingerprint in pins, deny lists, audit leaves and
/// the RFC 8705 token binding (`x5t#S256`). Computed here only.
pub fn certificate_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// What the gateway read from a client certificate, once per connection.
#[derive(Debug)]
pub struct PeerCert {
    /// SHA-256 of the DER certificate.
    pub fingerprint: [u8; 32],
    /// The participant id of the URI SAN, or why there is none.
    pub participant: Result<String, String>,
    /// The peer gateway its URI SAN `urn:ipex:gateway:<id>` names. The TLS verifier accepts
    /// such a certificate only from that peer's CA, so on an established connection this is
    /// the peer, authenticated.
    pub gateway: Option<String>,
}

impl PeerCert {
    /// Reads the fingerprint and participant id of a DER certificate.
    pub fn from_der(der: &[u8]) -> PeerCert {
        PeerCert {
            fingerprint: certificate_sha256(der),
            participant: participant_of(der),
            gateway: gateway_of(der).ok().flatten(),
        }
    }

    /// The fingerprint as lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

/// The URI SANs of a DER certificate that start with `prefix`, without it.
fn uri_names(der: &[u8], prefix: &str) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subjectAltName: {e}"))?;
    Ok(san
        .iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(prefix).map(str::to_string),
            _ => None,
        })
        .collect())
}

/// The peer gateway a certificate names (URI SAN `urn:ipex:gateway:<id>`): none, one, or an
/// error when it names more than one or cannot be read.
pub fn gateway_of(der: &[u8]) -> Result<Option<String>, String> {
    let ids = uri_names(der, GATEWAY_URI_SAN_PREFIX)?;
    match ids.as_slice() {
        [] => Ok(None),
        [id] => Ok(Some(id.clone())),
        _ => Err("the certificate names more than one gateway".to_string()),
    }
}

fn participant_of(der: &[u8]) -> Result<String, String> {
    let ids = uri_names(der, URI_SAN_PREFIX)?;
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
    // A peer's CA vouches for that gateway only, never for one of our participants.
    if let Some(gateway) = &peer.cert.gateway {
        return Err(AuthError::NoParticipant(format!(
            "it is the gateway certificate of {gateway:?}, which calls only the federation service"
        )));
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
