//! Sender signatures: an organisation signs each envelope it sends with its own key, so that a
//! recipient, a court or a regulator can check who sent a message without trusting the
//! gateway that carried it.
//!
//! The signature is a JWS (RFC 7515) in compact serialization with a **detached payload**
//! (Appendix F): `BASE64URL(header) "." "." BASE64URL(signature)`, carried in the envelope's
//! `signature` field. The payload it signs is the envelope's [`canonical_bytes`]: the envelope
//! as the gateway stores it (sender set to the signer, kind set from the payload, schema
//! version 1) with `signature` empty, in protobuf's deterministic encoding. The protected
//! header is `{"alg":…,"kid":…,"typ":"ipex-envelope+jws"}`: `alg` is `EdDSA` (Ed25519,
//! RFC 8037) or `ES256` (ECDSA P-256 with SHA-256, the signature as `r‖s`), `kid` the RFC 7638
//! thumbprint of the public key, so that a verifier picks the right key among those a
//! participant registered for rotation.
//!
//! Why JWS rather than COSE_Sign1: every language has a JOSE library (the gateway already
//! verifies officer tokens with one), the signature is a printable string that survives the
//! proto3 JSON `ipex get` prints, and a detached payload lets the signature sit inside the
//! very envelope it signs. COSE would add a CBOR stack for the same guarantees.

use crate::pb;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use prost::Message as _;
use sha2::{Digest, Sha256};

pub use crate::pb::limits::MAX_SIGNATURE_LEN;
/// The `typ` of the protected header.
pub const JWS_TYP: &str = "ipex-envelope+jws";

/// A public key that verifies a participant's signatures.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// Ed25519, `alg` EdDSA.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA P-256, `alg` ES256.
    P256(p256::ecdsa::VerifyingKey),
}

/// A private key that signs envelopes.
#[derive(Clone)]
pub enum SigningKey {
    /// Ed25519, `alg` EdDSA.
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256, `alg` ES256.
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().kid())
    }
}

/// Why a signature was refused. Each reads after the field name (`envelope.signature`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a JWS with a detached payload, or an unusable header.
    #[error("is not a JWS with a detached payload (BASE64URL(header)..BASE64URL(signature)): {0}")]
    Malformed(String),
    /// An `alg` other than EdDSA and ES256.
    #[error("alg {0:?} is not supported: EdDSA (Ed25519) or ES256 (ECDSA P-256)")]
    Algorithm(String),
    /// The signer registered no key.
    #[error("{0:?} has no signing key registered (registry signing_keys)")]
    NoKeys(String),
    /// The `kid` names none of the signer's keys.
    #[error("kid {kid:?} is not a signing key registered for {sender:?}")]
    UnknownKey {
        /// The signer.
        sender: String,
        /// The key id of the header.
        kid: String,
    },
    /// No key of the signer verifies it.
    #[error("does not verify with {keys} of {sender:?}: the envelope is not what was signed, or another key signed it")]
    Mismatch {
        /// The signer.
        sender: String,
        /// Which keys were tried, in words.
        keys: String,
    },
    /// A participant that must sign sent an unsigned envelope.
    #[error("is required: {0:?} signs every message it sends (registry require_signature)")]
    Required(String),
}

/// What a valid signature was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `EdDSA` or `ES256`.
    pub alg: &'static str,
    /// The RFC 7638 thumbprint of the key that verified it.
    pub kid: String,
}

fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = pem[start..].find("-----")?;
    Some(&pem[start..start + end])
}

impl PublicKey {
    /// A public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`): Ed25519 or EC P-256.
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        match pem_label(pem) {
            Some("PUBLIC KEY") => {}
            Some(label) => {
                return Err(format!(
                    "is a {label:?}; expected the PUBLIC KEY (SPKI PEM) of an Ed25519 or P-256 key"
                ))
            }
            None => return Err("is not PEM".into()),
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(key));
        }
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(key));
        }
        Err("is not an Ed25519 or EC P-256 public key".into())
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => {
                p256::pkcs8::EncodePublicKey::to_public_key_pem(k, LineEnding::LF)
            }
        }
        .expect("a valid public key encodes as SPKI PEM")
    }

    /// The JWS `alg` this key verifies.
    pub fn alg(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "EdDSA",
            PublicKey::P256(_) => "ES256",
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, BASE64URL): the `kid` of its signatures.
    pub fn kid(&self) -> String {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        // The required members only, in lexicographic order, without white space.
        let jwk = match self {
            PublicKey::Ed25519(k) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64(k.as_bytes())
            ),
            PublicKey::P256(k) => {
                let point = k.to_encoded_point(false);
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(point.x().expect("an uncompressed point has x")),
                    b64(point.y().expect("an uncompressed point has y"))
                )
            }
        };
        b64(&Sha256::digest(jwk.as_bytes()))
    }

    fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(input, &s).is_ok()),
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                // Low S only: (r, n − s) would verify too, and one envelope would have two
                // signatures.
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| s.normalize_s().is_none() && k.verify(input, &s).is_ok())
            }
        }
    }
}

impl SigningKey {
    /// A fresh Ed25519 key from the operating system's random source.
    pub fn generate_ed25519() -> SigningKey {
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    /// A private key from PKCS#8 PEM (label `PRIVATE KEY`): Ed25519 or EC P-256; a P-256 key
    /// may also be SEC1 (label `EC PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        match pem_label(pem) {
            Some("PRIVATE KEY") => {
                if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::Ed25519(key));
                }
                if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::P256(key));
                }
                Err("is not an Ed25519 or EC P-256 private key".into())
            }
            Some("EC PRIVATE KEY") => p256::SecretKey::from_sec1_pem(pem)
                .map(|k| SigningKey::P256(k.into()))
                .map_err(|_| "is not an EC P-256 private key".into()),
            Some(label) => Err(format!(
                "is a {label:?}; expected a PRIVATE KEY (PKCS#8 PEM) of an Ed25519 or P-256 key"
            )),
            None => Err("is not PEM".into()),
        }
    }

    /// The private key as PKCS#8 PEM: secret material.
    pub fn to_pem(&self) -> String {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::P256(k) => p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(k, LineEnding::LF),
        }
        .expect("a valid private key encodes as PKCS#8 PEM")
        .as_str()
        .to_owned()
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// The JWS of `envelope` (its [`canonical_bytes`]): what goes in its `signature`. The
    /// envelope must be as the gateway stores it: sender, kind and schema version set
    /// ([`prepare_for_signing`]).
    pub fn sign(&self, envelope: &pb::Envelope) -> String {
        let public = self.public();
        let header = format!(
            r#"{{"alg":"{}","kid":"{}","typ":"{JWS_TYP}"}}"#,
            public.alg(),
            public.kid()
        );
        let header = URL_SAFE_NO_PAD.encode(header.as_bytes());
        let input = signing_input(&header, &canonical_bytes(envelope));
        let signature = match self {
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(&input).to_bytes().to_vec()
            }
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = k.sign(&input);
                s.normalize_s().unwrap_or(s).to_bytes().to_vec()
            }
        };
        format!("{header}..{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Sets what the gateway sets on an envelope before it stores it, so that a client signs the
/// bytes the gateway will verify: the sender, the kind of the payload, schema version 1.
pub fn prepare_for_signing(envelope: &mut pb::Envelope, sender: &str) {
    envelope.sender = sender.to_owned();
    if let Some(payload) = &envelope.payload {
        envelope.kind = super::payload::kind_of(payload) as i32;
    }
    if envelope.schema_version == 0 {
        envelope.schema_version = super::envelope::SCHEMA_VERSION;
    }
}

/// The bytes a signature covers: `envelope` without its signature, deterministically encoded.
pub fn canonical_bytes(envelope: &pb::Envelope) -> Vec<u8> {
    if envelope.signature.is_empty() {
        return envelope.encode_to_vec();
    }
    let mut unsigned = envelope.clone();
    unsigned.signature.clear();
    unsigned.encode_to_vec()
}

/// The JWS signing input for a detached payload: `header "." BASE64URL(payload)`.
fn signing_input(header_b64: &str, payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(header_b64.len() + 1 + payload.len().div_ceil(3) * 4);
    input.extend_from_slice(header_b64.as_bytes());
    input.push(b'.');
    input.extend_from_slice(URL_SAFE_NO_PAD.encode(payload).as_bytes());
    input
}

/// Verifies the `signature` of `envelope` (as stored: sender set) against the keys its sender
/// registered.
pub fn verify(envelope: &pb::Envelope, keys: &[PublicKey]) -> Result<Verified, SignatureError> {
    let malformed = |why: &str| SignatureError::Malformed(why.to_owned());
    let sender = &envelope.sender;
    let parts: Vec<&str> = envelope.signature.split('.').collect();
    let [header_b64, payload, signature_b64] = parts[..] else {
        return Err(malformed("expected three parts separated by dots"));
    };
    if !payload.is_empty() {
        return Err(malformed(
            "the payload part must be empty: the payload is the envelope itself",
        ));
    }
    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| malformed("the header is not BASE64URL without padding"))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|_| malformed("the header is not a JSON object"))?;
    let header = header
        .as_object()
        .ok_or_else(|| malformed("the header is not a JSON object"))?;
    if header.get("typ").and_then(|t| t.as_str()) != Some(JWS_TYP) {
        return Err(malformed(
            "the header's typ must be \"ipex-envelope+jws\": a JWS made for something else is not an envelope signature",
        ));
    }
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(malformed(
            "the header carries crit or b64, which ipex signatures do not use",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(|| malformed("the header has no alg"))?;
    if alg != "EdDSA" && alg != "ES256" {
        return Err(SignatureError::Algorithm(alg.to_owned()));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(malformed("the header's kid is not a string")),
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| malformed("the signature is not BASE64URL without padding"))?;
    if keys.is_empty() {
        return Err(SignatureError::NoKeys(sender.clone()));
    }
    let candidates: Vec<(&PublicKey, String)> = keys
        .iter()
        .filter(|k| k.alg() == alg)
        .map(|k| (k, k.kid()))
        .filter(|(_, k)| kid.is_none_or(|kid| kid == k))
        .collect();
    if let (Some(kid), true) = (kid, candidates.is_empty()) {
        return Err(SignatureError::UnknownKey {
            sender: sender.clone(),
            kid: kid.to_owned(),
        });
    }
    let input = signing_input(header_b64, &canonical_bytes(envelope));
    for (key, kid) in &candidates {
        if key.verifies(&input, &signature) {
            return Ok(Verified {
                alg: key.alg(),
                kid: kid.clone(),
            });
        }
    }
    Err(SignatureError::Mismatch {
        sender: sender.clone(),
        keys: match &candidates[..] {
            [] => format!("any registered key: none is an {alg} key"),
            [(_, kid)] => format!("the signing key {kid}"),
            many => format!("any of the {} {alg} signing keys", many.len()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> pb::Envelope {
        let mut e = pb::Envelope {
            id: "sig-1".into(),
            tlp: pb::Tlp::Green as i32,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_780_000_000,
                nanos: 0,
            }),
            payload: Some(pb::envelope::Payload::SellerFlag(pb::SellerFlag::default())),
            ..Default::default()
        };
        prepare_for_signing(&mut e, "market-a");
        e
    }

    #[test]
    fn both_algorithms_sign_and_verify() {
        let p256 = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap());
        for key in [
            SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[1; 32])),
            p256,
        ] {
            let mut e = envelope();
            e.signature = key.sign(&e);
            let verified = verify(&e, &[key.public()]).unwrap();
            assert_eq!(verified.kid, key.public().kid());
            // A changed field, a key that did not sign it: refused.
            let mut tampered = e.clone();
            tampered.id = "sig-2".into();
            assert!(matches!(
                verify(&tampered, &[key.public()]),
                Err(SignatureError::Mismatch { .. })
            ));
            let other = SigningKey::generate_ed25519().public();
            assert!(matches!(
                verify(&e, &[other]),
                Err(SignatureError::UnknownKey { .. })
            ));
            // The PEM forms read back as the same keys.
            let back = SigningKey::from_pem(&key.to_pem()).unwrap();
            assert_eq!(back.public().kid(), key.public().kid());
            let public = PublicKey::from_pem(&key.public().to_pem()).unwrap();
            assert_eq!(public.kid(), key.public().kid());
        }
    }

    #[test]
    fn high_s_and_foreign_typ_are_refused() {
        let key = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap());
        let mut e = envelope();
        e.signature = key.sign(&e);
        verify(&e, &[key.public()]).unwrap();
        // The same signature with s replaced by n − s.
        let (header, sig) = e.signature.split_once("..").unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let low = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        let mut malleated = e.clone();
        malleated.signature = format!("{header}..{}", URL_SAFE_NO_PAD.encode(high.to_bytes()));
        assert!(matches!(
            verify(&malleated, &[key.public()]),
            Err(SignatureError::Mismatch { .. })
        ));
        // A JWS with another typ (or none) is not an envelope signature.
        let other = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let mut foreign = e.clone();
        foreign.signature = format!("{other}..{}", URL_SAFE_NO_PAD.encode(&sig));
        assert!(matches!(
            verify(&foreign, &[key.public()]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn rfc8037_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert_eq!(
            PublicKey::Ed25519(key).kid(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn malformed_signatures_are_named() {
        let key = SigningKey::generate_ed25519();
        let mut e = envelope();
        for bad in ["", "abc", "a.b.c", "e30..AA", "eyJhbGciOiJIUzI1NiJ9..AA"] {
            e.signature = bad.into();
            let error = verify(&e, &[key.public()]).unwrap_err();
            assert!(
                matches!(
                    error,
                    SignatureError::Malformed(_) | SignatureError::Algorithm(_)
                ),
                "{bad}: {error}"
            );
        }
    }
}
