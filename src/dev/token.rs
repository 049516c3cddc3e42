//! Development officer tokens: an Ed25519 signer that plays a participant's identity system
//! ([`DevSigner`]), and [`issue`], which mints a token for a development participant from its
//! files under `certs/dev/` (what `ipex token issue` prints). Never a production issuer.

use crate::auth::token::{init, now_unix, Scope, TokenError, TokenKeys};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
// ---------------------------------------------------------------------------

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_core::{OsRng, RngCore as _};
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// An Ed25519 token signer for development and tests: it plays a
/// participant's identity system. Never use it as a production issuer.
///
/// Its `Debug` shows the public key only.
#[derive(Debug)]
pub struct DevSigner {
    signing: ed25519_dalek::SigningKey,
    kid: Option<String>,
}

impl DevSigner {
    /// A signer with a fresh random key from the OS, without key id.
    pub fn generate() -> Result<Self, TokenError> {
        let mut secret = [0u8; 32];
        OsRng.try_fill_bytes(&mut secret).map_err(signing_error)?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
        Ok(DevSigner { signing, kid: None })
    }

    /// A signer from a PKCS#8 PEM (`PRIVATE KEY`) Ed25519 key, v1 or v2, without key id.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TokenError> {
        let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(signing_error)?;
        Ok(DevSigner { signing, kid: None })
    }

    /// The same signer, putting `kid` in the header of the tokens it mints.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id put in minted tokens, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The private key as PKCS#8 v1 PEM (`PRIVATE KEY`): secret material.
    pub fn to_pkcs8_pem(&self) -> Result<String, TokenError> {
        let pem = pkcs8_v1(&self.signing)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(signing_error)?;
        Ok(pem.as_str().to_owned())
    }

    /// The raw Ed25519 public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public key as SPKI PEM (`PUBLIC KEY`), for [`TokenKeys::from_pem`].
    pub fn public_key_pem(&self) -> Result<String, TokenError> {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(signing_error)
    }

    /// The public key as a JWKS document (with the `kid`, if set), for [`TokenKeys::from_jwks`].
    pub fn public_jwks(&self) -> String {
        let mut jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
            "use": "sig",
            "alg": "EdDSA",
        });
        if let Some(kid) = &self.kid {
            jwk["kid"] = Value::String(kid.clone());
        }
        serde_json::json!({ "keys": [jwk] }).to_string()
    }

    /// The verification key of this signer, as [`TokenKeys`] (with its `kid`, if set).
    pub fn token_keys(&self) -> Result<TokenKeys, TokenError> {
        TokenKeys::from_jwks(&self.public_jwks())
    }

    /// Mints a token for officer `sub` of participant `iss`, for gateway
    /// `aud`, with `scopes`, valid from `now` for `ttl`, bound to the client
    /// certificate whose SHA-256 is `cert_sha256`, with a random `jti`.
    #[allow(clippy::too_many_arguments)] // mirrors the claims one to one
    pub fn mint(
        &self,
        iss: &str,
        sub: &str,
        aud: &str,
        scopes: &[Scope],
        ttl: Duration,
        cert_sha256: &[u8; 32],
        now: u64,
    ) -> Result<String, TokenError> {
        let mut jti = [0u8; 16];
        OsRng.try_fill_bytes(&mut jti).map_err(signing_error)?;
        let mut claims = serde_json::json!({
            "iss": iss,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "exp": now.saturating_add(ttl.as_secs()),
            "jti": hex::encode(jti),
            "cnf": { "x5t#S256": URL_SAFE_NO_PAD.encode(cert_sha256) },
        });
        if !scopes.is_empty() {
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            claims["scope"] = Value::String(names.join(" "));
        }
        self.sign_claims(&claims)
    }

    /// Signs arbitrary claims as an EdDSA JWT (with this signer's `kid`), e.g.
    /// to craft unusual tokens in tests.
    pub fn sign_claims<T: serde::Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        init();
        let der = pkcs8_v1(&self.signing)
            .to_pkcs8_der()
            .map_err(signing_error)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = self.kid.clone();
        let key = EncodingKey::from_ed_der(der.as_bytes());
        jsonwebtoken::encode(&header, claims, &key).map_err(signing_error)
    }
}

/// The key as PKCS#8 v1 (RFC 5208): no public key attached. ed25519-dalek
/// writes v2 (RFC 5958) with it, which some readers refuse (Python's
/// `cryptography`: "extra data").
fn pkcs8_v1(signing: &ed25519_dalek::SigningKey) -> ed25519_dalek::pkcs8::KeypairBytes {
    ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: signing.to_bytes(),
        public_key: None,
    }
}

fn signing_error(e: impl fmt::Display) -> TokenError {
    TokenError::Signing {
        reason: e.to_string(),
    }
}

/// Mints a token for officer `sub` of development participant `participant`, signed with its
/// development token key and bound to its development certificate (both under `certs_dir`),
/// for gateway `audience`, with the scopes named (`exchange:submit`, …), valid for `ttl`.
pub fn issue(
    certs_dir: &Path,
    participant: &str,
    sub: &str,
    audience: &str,
    scopes: &[String],
    ttl: Duration,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    let dev = super::paths::DevPaths {
        dir: certs_dir.to_path_buf(),
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let signer =
        DevSigner::from_pkcs8_pem(&read(dev.token_key(participant))?).map_err(|e| e.to_string())?;
    let cert_file = dev.cert(participant);
    let cert =
        rustls::pki_types::CertificateDer::from_pem_slice(read(cert_file.clone())?.as_bytes())
            .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let scopes = scopes
        .iter()
        .map(|s| Scope::parse(s.trim()).ok_or_else(|| format!("unknown scope {s:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    signer
        .mint(
            participant,
            sub,
            audience,
            &scopes,
            ttl,
            &crate::auth::identity::certificate_sha256(&cert),
            now_unix(),
        )
        .map_err(|e| e.to_string())
}
