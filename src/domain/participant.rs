//! Participants and their roles: the organisations that exchange messages, as the registry
//! describes them. Data only; loading the registry from its file is [`crate::auth`]'s.

use crate::pb;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The role of a participant, as the registry names it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
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
    /// PLATFORM only: the hosts of its listing URLs (`market-a.example`). A seizure whose
    /// listing URL is on one of them, or on a subdomain of one, raises a listing alert for
    /// this platform.
    #[serde(default)]
    pub domains: Vec<String>,
    /// CUSTOMS only: whether this administration's seizures raise listing alerts for the
    /// platforms they concern. Default: true; `false` opts out.
    #[serde(default)]
    pub listing_alerts: Option<bool>,
    /// PEM files (SPKI `PUBLIC KEY`, Ed25519 or EC P-256) of the keys that verify this
    /// organisation's signatures on the envelopes it sends, relative to the registry file.
    /// Several may be listed while a key is rotated.
    #[serde(default)]
    pub signing_keys: Vec<PathBuf>,
    /// Whether every envelope this participant sends must be signed. Default: false.
    #[serde(default)]
    pub require_signature: Option<bool>,
    /// Whether participants of peer gateways may address it (as `<id>@<this gateway>`): it is
    /// then published to the peers. Default: false.
    #[serde(default)]
    pub open_to_peers: Option<bool>,
}

/// The participant id and, for a participant of a peer gateway, the gateway of an address
/// (`market-a`, or `market-a@gw-ie`).
pub fn split_address(address: &str) -> (&str, Option<&str>) {
    match address.split_once('@') {
        Some((id, gateway)) => (id, Some(gateway)),
        None => (address, None),
    }
}

/// The address of participant `id` of gateway `gateway`: `<id>@<gateway>`.
pub fn qualify(id: &str, gateway: &str) -> String {
    format!("{id}@{gateway}")
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
