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
