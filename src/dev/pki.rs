//! Certificates for development and tests: a local CA, a server certificate and one client
//! certificate per participant, carrying the participant id in the URI SAN
//! `urn:ipex:participant:<id>`. Production certificates come from the operators' own PKI
//! (`certs/README.md`); this module only makes the one-command development gateway possible
//! and lets tests generate everything they use, so no private key is ever committed.

use super::paths::DevPaths;
use crate::auth::identity::URI_SAN_PREFIX;
use crate::domain::signature::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use std::path::{Path, PathBuf};

/// Errors making or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A token-signing key could not be generated.
    #[error("cannot generate a token-signing key: {0}")]
    Token(String),
    /// The checkpoint signing key could not be generated.
    #[error("cannot generate the checkpoint signing key: {0}")]
    Checkpoint(String),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A certificate with its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// The certificate's serial number, for revocation.
    pub serial: Vec<u8>,
}

/// A certificate authority held in memory.
pub struct Ca {
    /// Signs what this CA issues.
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate and key, PEM.
    pub issued: Issued,
}

impl Ca {
    /// Generates a new self-signed CA named `common_name` (ECDSA P-256).
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: Vec::new(),
        };
        Ok(Ca {
            issuer: Issuer::new(params, key),
            issued,
        })
    }

    /// The CA of an existing development PKI, from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issued = Issued {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            serial: Vec::new(),
        };
        Ok(Ca {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            issued,
        })
    }

    /// Issues a server certificate for the given DNS names and IP addresses.
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, PkiError> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<String>>())?;
        params.distinguished_name = name(names.first().copied().unwrap_or("ipex gateway"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Issues a client certificate for participant `id` (URI SAN `urn:ipex:participant:<id>`).
    pub fn issue_participant(&self, id: &str) -> Result<Issued, PkiError> {
        self.issue_client(id, Some(&format!("{URI_SAN_PREFIX}{id}")))
    }

    /// Issues a gateway certificate for gateway `id` (URI SAN `urn:ipex:gateway:<id>`,
    /// client authentication): what the gateway presents to its peers.
    pub fn issue_gateway(&self, id: &str) -> Result<Issued, PkiError> {
        self.issue_client(
            id,
            Some(&format!(
                "{}{id}",
                crate::auth::identity::GATEWAY_URI_SAN_PREFIX
            )),
        )
    }

    /// Issues a client certificate for participant `id` valid from `not_before` to
    /// `not_after` only: tests use it for expired certificates.
    pub fn issue_participant_valid(
        &self,
        id: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(id);
        params
            .subject_alt_names
            .push(SanType::URI(format!("{URI_SAN_PREFIX}{id}").try_into()?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        self.sign(params)
    }

    /// Issues a client certificate with an arbitrary URI SAN, or none: tests use it for
    /// certificates that name no participant.
    pub fn issue_client(
        &self,
        common_name: &str,
        uri_san: Option<&str>,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        if let Some(uri) = uri_san {
            params
                .subject_alt_names
                .push(SanType::URI(uri.to_string().try_into()?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut serial = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
        serial[0] &= 0x7f; // a positive INTEGER
        serial[0] |= 0x01; // without a leading zero byte to strip
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.to_vec(),
        })
    }

    /// A certificate revocation list, PEM, revoking the certificates with these serials.
    pub fn revoke(&self, serials: &[&[u8]]) -> Result<String, PkiError> {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ipex development");
    dn
}

/// A development participant: fixed ids so examples and scripts can rely on them.
pub struct DevParticipant {
    /// Participant id.
    pub id: &'static str,
    /// Role name as in the registry file.
    pub role: &'static str,
    /// ISO country, empty for international organisations.
    pub country: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// A platform's listing hosts (registry `domains`).
    pub domains: &'static [&'static str],
}

/// The development participants: one of each role, two customs administrations and two
/// marketplaces, so that a seizure and a seller seen on two platforms run out of the box.
pub const DEV_PARTICIPANTS: &[DevParticipant] = &[
    DevParticipant {
        id: "customs-nl",
        role: "CUSTOMS",
        country: "NL",
        display_name: "Customs Netherlands (development)",
        domains: &[],
    },
    DevParticipant {
        id: "customs-fr",
        role: "CUSTOMS",
        country: "FR",
        display_name: "Customs France (development)",
        domains: &[],
    },
    DevParticipant {
        id: "market-a",
        role: "PLATFORM",
        country: "IE",
        display_name: "Marketplace A (development)",
        domains: &["market-a.example"],
    },
    DevParticipant {
        id: "market-b",
        role: "PLATFORM",
        country: "DE",
        display_name: "Marketplace B (development)",
        domains: &["market-b.example"],
    },
    DevParticipant {
        id: "express-b",
        role: "CARRIER",
        country: "BE",
        display_name: "Express carrier B (development)",
        domains: &[],
    },
    DevParticipant {
        id: "brand-c",
        role: "RIGHT_HOLDER",
        country: "FR",
        display_name: "Brand owner C (development)",
        domains: &[],
    },
    DevParticipant {
        id: "rilo-we",
        role: "PARTNER",
        country: "",
        display_name: "RILO Western Europe (development)",
        domains: &[],
    },
];

/// Renders a participant registry file for `participants`.
pub fn registry_toml(participants: &[DevParticipant]) -> String {
    let mut out = String::from(
        "# Participant registry: who may connect, with which role.\n\
         # The id is read from the client certificate's URI SAN urn:ipex:participant:<id>.\n",
    );
    for p in participants {
        out.push_str(&format!(
            "\n[[participant]]\nid = \"{}\"\nrole = \"{}\"\ncountry = \"{}\"\ndisplay_name = \"{}\"\ntoken_keys = [\"{}.token.pub.pem\"]\nsigning_keys = [\"{}.sign.pub\"]\n",
            p.id, p.role, p.country, p.display_name, p.id, p.id
        ));
        if !p.domains.is_empty() {
            let quoted: Vec<String> = p.domains.iter().map(|d| format!("{d:?}")).collect();
            out.push_str(&format!("domains = [{}]\n", quoted.join(", ")));
        }
    }
    out
}

/// Creates the development PKI under `dir` unless its CA already exists: a CA, a server
/// certificate for `localhost` and `127.0.0.1`, a certificate and key per development
/// participant with a token-signing key pair and an envelope-signing key pair, and the
/// registry. A PKI made before envelope signatures gains the signing keys. Returns true when
/// it created or added anything.
pub fn ensure_dev_pki(dir: &Path) -> Result<bool, PkiError> {
    let paths = DevPaths {
        dir: dir.to_path_buf(),
    };
    let write = |path: PathBuf, contents: &str, private: bool| -> Result<(), PkiError> {
        write_file(&path, contents, private).map_err(|source| PkiError::Write { path, source })
    };
    if paths.ca().exists() && paths.registry().exists() {
        return upgrade(&paths, &write);
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = Ca::generate("ipex development CA")?;
    let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"])?;
    for p in DEV_PARTICIPANTS {
        participant_files(&ca, &paths, p, &write)?;
    }
    write(paths.server_cert(), &server.cert_pem, false)?;
    write(paths.server_key(), &server.key_pem, true)?;
    write(paths.dir.join("ca.key"), &ca.issued.key_pem, true)?;
    write(paths.registry(), &registry_toml(DEV_PARTICIPANTS), false)?;
    // The CA certificate last: its presence marks a complete PKI.
    write(paths.ca(), &ca.issued.cert_pem, false)?;
    Ok(true)
}

/// A participant's certificate and key, token-signing and envelope-signing key pairs.
fn participant_files(
    ca: &Ca,
    paths: &DevPaths,
    p: &DevParticipant,
    write: &dyn Fn(PathBuf, &str, bool) -> Result<(), PkiError>,
) -> Result<(), PkiError> {
    let issued = ca.issue_participant(p.id)?;
    write(paths.cert(p.id), &issued.cert_pem, false)?;
    write(paths.key(p.id), &issued.key_pem, true)?;
    let signer =
        crate::dev::token::DevSigner::generate().map_err(|e| PkiError::Token(e.to_string()))?;
    let private = signer
        .to_pkcs8_pem()
        .map_err(|e| PkiError::Token(e.to_string()))?;
    let public = signer
        .public_key_pem()
        .map_err(|e| PkiError::Token(e.to_string()))?;
    write(paths.token_key(p.id), &private, true)?;
    write(paths.token_public_key(p.id), &public, false)?;
    sign_key_files(paths, p.id, write)
}

/// A participant's envelope-signing key pair (Ed25519): the key, and the public half the
/// registry names.
fn sign_key_files(
    paths: &DevPaths,
    id: &str,
    write: &dyn Fn(PathBuf, &str, bool) -> Result<(), PkiError>,
) -> Result<(), PkiError> {
    let signing = SigningKey::generate_ed25519();
    write(paths.sign_key(id), &signing.to_pem(), true)?;
    write(paths.sign_public_key(id), &signing.public().to_pem(), false)
}

/// Brings a development PKI made by an earlier release up to date: a participant added since
/// (market-b) gets its certificate and keys from the PKI's own CA and its registry entry, and
/// every participant an Ed25519 signing key, registered. Returns true when it added any.
fn upgrade(
    paths: &DevPaths,
    write: &dyn Fn(PathBuf, &str, bool) -> Result<(), PkiError>,
) -> Result<bool, PkiError> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| PkiError::Write { path, source })
    };
    let registry = read(paths.registry())?;
    let mut updated = registry.clone();
    let missing: Vec<&DevParticipant> = DEV_PARTICIPANTS
        .iter()
        .filter(|p| !paths.cert(p.id).exists() && !registry.contains(&format!("id = \"{}\"", p.id)))
        .collect();
    if !missing.is_empty() && paths.dir.join("ca.key").exists() {
        let ca = Ca::load(&read(paths.ca())?, &read(paths.dir.join("ca.key"))?)?;
        for p in missing {
            participant_files(&ca, paths, p, write)?;
            let entry = registry_toml(std::slice::from_ref(p));
            let entry = entry.split_once("\n\n").map_or(entry.as_str(), |(_, e)| e);
            updated.push('\n');
            updated.push_str(entry);
        }
    }
    for p in DEV_PARTICIPANTS {
        let token_line = format!("token_keys = [\"{}.token.pub.pem\"]\n", p.id);
        if !paths.cert(p.id).exists()
            || paths.sign_key(p.id).exists()
            || !updated.contains(&token_line)
        {
            continue;
        }
        sign_key_files(paths, p.id, write)?;
        updated = updated.replacen(
            &token_line,
            &format!("{token_line}signing_keys = [\"{}.sign.pub\"]\n", p.id),
            1,
        );
    }
    if updated == registry {
        return Ok(false);
    }
    write(paths.registry(), &updated, false)?;
    Ok(true)
}

/// Writes a private key file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    write_file(path, contents, true)
}

fn write_file(path: &Path, contents: &str, private: bool) -> std::io::Result<()> {
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}
