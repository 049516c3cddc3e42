//! Development mode: a local CA, certificates and officer-token keys for the development
//! participants, their registry ([`pki`]), the checkpoint signing key, and the configuration
//! that runs a gateway on them ([`config`]) — so that one command starts a working gateway.
//! Also what tests and benchmarks use to issue certificates. Never for production.
//!
//! Uses [`crate::ops`] (the configuration), [`crate::auth`] (the token key format) and
//! [`crate::log`] (the checkpoint key format).

pub mod paths;
pub mod pki;
pub mod token;

use crate::ops::config::{Config, TlsConfig};
use std::net::SocketAddr;
use std::path::Path;

/// The default development certificate directory.
pub const DEV_CERTS_DIR: &str = "certs/dev";

/// Where the development configuration serves its metrics (the port OpenTelemetry's
/// Prometheus exporter uses by convention).
pub const DEV_METRICS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9464,
));

/// The development configuration: the PKI and registry under `certs_dir`, metrics on
/// [`DEV_METRICS_LISTEN`], the store in `./data`.
pub fn config(certs_dir: &Path) -> Config {
    let paths = paths::DevPaths {
        dir: certs_dir.to_path_buf(),
    };
    let mut config = Config::new(
        paths.registry(),
        TlsConfig {
            cert: paths.server_cert(),
            key: paths.server_key(),
            client_ca: paths.ca(),
            crls: Vec::new(),
        },
        paths.audit_key(),
    );
    config.dev_mode = true;
    config.metrics_listen = Some(DEV_METRICS_LISTEN);
    config
}

/// Creates, in the development PKI in `dir`, what the gateway needs to peer: a gateway
/// certificate naming `gateway_id` (issued again when the one there names another gateway)
/// and a witness key named `<origin>/witness` with its verifier key beside it. Returns whether
/// it created anything.
pub fn ensure_federation(
    dir: &Path,
    gateway_id: &str,
    origin: &str,
) -> Result<bool, pki::PkiError> {
    let paths = paths::DevPaths {
        dir: dir.to_path_buf(),
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| pki::PkiError::Write { path, source })
    };
    let write = |path: std::path::PathBuf, contents: &str, private: bool| {
        let written = if private {
            pki::write_private(&path, contents)
        } else {
            std::fs::write(&path, contents)
        };
        written.map_err(|source| pki::PkiError::Write { path, source })
    };
    let mut created = false;
    let names_us = std::fs::read(paths.gateway_cert()).ok().is_some_and(|pem| {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem)
            .ok()
            .and_then(|der| crate::auth::identity::gateway_of(&der).ok().flatten())
            .is_some_and(|id| id == gateway_id)
    });
    if !names_us {
        let ca = pki::Ca::load(&read(paths.ca())?, &read(dir.join("ca.key"))?)?;
        let issued = ca.issue_gateway(gateway_id)?;
        write(paths.gateway_key(), &issued.key_pem, true)?;
        write(paths.gateway_cert(), &issued.cert_pem, false)?;
        created = true;
    }
    if !paths.witness_key().exists() {
        let key = crate::log::cosign::CosignerKey::generate(&format!("{origin}/witness"))
            .map_err(|e| pki::PkiError::Checkpoint(e.to_string()))?;
        write(
            paths.witness_key(),
            &format!("{}\n", key.private_key()),
            true,
        )?;
        write(
            paths.witness_vkey(),
            &format!("{}\n", key.verifier_key()),
            false,
        )?;
        created = true;
    }
    Ok(created)
}

/// Creates the checkpoint signing key at `path`, named `origin`, unless the file exists.
/// Returns whether it created it.
pub fn ensure_signing_key(path: &Path, origin: &str) -> Result<bool, pki::PkiError> {
    if path.exists() {
        return Ok(false);
    }
    let signer = crate::log::note::NoteSigner::generate(origin)
        .map_err(|e| pki::PkiError::Checkpoint(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| pki::PkiError::Write {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    pki::write_private(path, &format!("{}\n", signer.private_key())).map_err(|e| {
        pki::PkiError::Write {
            path: path.to_path_buf(),
            source: e,
        }
    })?;
    Ok(true)
}
