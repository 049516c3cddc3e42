//! Signed envelopes on the client: `ipex submit --sign KEY` signs what it sends, and
//! `ipex message verify FILE --key PEM` checks a stored message offline against its sender's
//! public key alone, without the gateway ([`crate::domain::signature`]).

use super::error::CliError;
use crate::domain::signature::{self, PublicKey, SignatureError, SigningKey};
use crate::pb;
use sha2::{Digest, Sha256};
use std::path::Path;

fn read(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read the {what} {}: {e}", path.display())))
}

/// The signing key in `path` (PKCS#8 PEM, Ed25519 or EC P-256).
pub fn signing_key(path: &Path) -> Result<SigningKey, CliError> {
    SigningKey::from_pem(&read(path, "signing key")?)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// Signs `envelopes` as `sender` sends them: sets what the gateway sets (sender, kind, schema
/// version), then the signature over the canonical bytes.
pub fn sign_all(envelopes: &mut [pb::Envelope], sender: &str, key: &SigningKey) {
    for envelope in envelopes {
        envelope.signature.clear();
        signature::prepare_for_signing(envelope, sender);
        envelope.signature = key.sign(envelope);
    }
}

/// The envelope in a JSON file: a `GetResponse` (as `ipex get` prints it), a `StoredMessage`,
/// a `Delivery` or an `Envelope`.
fn envelope_of(path: &Path) -> Result<pb::Envelope, CliError> {
    let text = read(path, "message file")?;
    let bad = |e: String| CliError::Input(format!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let inner = value
        .get("message")
        .and_then(|m| m.get("envelope"))
        .or_else(|| value.get("envelope"))
        .unwrap_or(&value);
    crate::pb::json::from_json::<pb::Envelope>("ipex.v1.Envelope", &inner.to_string())
        .map_err(|e| bad(e.to_string()))
}

/// Verifies the sender's signature on the message in `file` with the public key in `key`.
pub fn verify_file(file: &Path, key: &Path) -> Result<serde_json::Value, CliError> {
    let envelope = envelope_of(file)?;
    let public = PublicKey::from_pem(&read(key, "public key")?)
        .map_err(|e| CliError::Input(format!("{}: {e}", key.display())))?;
    let at = || {
        format!(
            "{} ({:?} from {:?})",
            file.display(),
            envelope.id,
            envelope.sender
        )
    };
    if envelope.signature.is_empty() {
        return Err(CliError::Invalid(format!(
            "{}: the message carries no signature",
            at()
        )));
    }
    match signature::verify(&envelope, std::slice::from_ref(&public)) {
        Ok(verified) => Ok(serde_json::json!({
            "signature": "valid",
            "sender": envelope.sender,
            "id": envelope.id,
            "alg": verified.alg,
            "kid": verified.kid,
            "canonical_sha256": hex::encode(Sha256::digest(signature::canonical_bytes(&envelope))),
        })),
        Err(SignatureError::UnknownKey { kid, .. }) => Err(CliError::Invalid(format!(
            "{}: signed with key {kid}, not with the key in {} ({})",
            at(),
            key.display(),
            public.kid()
        ))),
        Err(SignatureError::Mismatch { .. }) => Err(CliError::Invalid(format!(
            "{}: the signature does not verify with the key in {} ({}): the message is not what \
             was signed, or another key signed it",
            at(),
            key.display(),
            public.kid()
        ))),
        Err(e) => Err(CliError::Invalid(format!("{}: signature {e}", at()))),
    }
}
