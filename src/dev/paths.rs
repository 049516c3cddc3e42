//! Where the development PKI keeps its files, inside one directory (`certs/dev` by default).

use std::path::PathBuf;

/// Paths of the development PKI inside its directory.
#[derive(Clone, Debug)]
pub struct DevPaths {
    /// The directory, `certs/dev` by default.
    pub dir: PathBuf,
}

impl DevPaths {
    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The gateway's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    /// The gateway's key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// A participant's certificate.
    pub fn cert(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pem"))
    }
    /// A participant's key.
    pub fn key(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }
    /// The development checkpoint signing key.
    pub fn audit_key(&self) -> PathBuf {
        self.dir.join("audit.key")
    }
    /// A participant's development token-signing key (Ed25519, PKCS#8).
    pub fn token_key(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.token.key"))
    }
    /// The public half of a participant's token-signing key, as the registry names it.
    pub fn token_public_key(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.token.pub.pem"))
    }
    /// A participant's development envelope-signing key (Ed25519, PKCS#8): `ipex submit
    /// --sign` takes it.
    pub fn sign_key(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.sign.key"))
    }
    /// The public half of a participant's envelope-signing key, as the registry's
    /// `signing_keys` names it and `ipex message verify --key` takes it.
    pub fn sign_public_key(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.sign.pub"))
    }
    /// The gateway's development gateway certificate (URI SAN `urn:ipex:gateway:<id>`),
    /// presented to peer gateways.
    pub fn gateway_cert(&self) -> PathBuf {
        self.dir.join("gateway.pem")
    }
    /// Its key.
    pub fn gateway_key(&self) -> PathBuf {
        self.dir.join("gateway.key")
    }
    /// The gateway's development witness (cosigning) key.
    pub fn witness_key(&self) -> PathBuf {
        self.dir.join("witness.key")
    }
    /// The public half of the witness key, a verifier key string for peers' `witness_key`
    /// and `ipex audit verify --witness`.
    pub fn witness_vkey(&self) -> PathBuf {
        self.dir.join("witness.vkey")
    }
    /// The development participant registry.
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry.toml")
    }
}
