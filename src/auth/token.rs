//! Officer tokens: JWTs saying which officer of the calling participant acts, with what scopes.
//!
//! mTLS names only the participant, so a call may carry `authorization: Bearer <JWT>` issued by
//! the participant for one officer, signed with a key it registered and bound (RFC 8705,
//! `cnf.x5t#S256`) to the client certificate of the call, so that a copied token is worthless
//! elsewhere. `jsonwebtoken` parses tokens and checks signature and audience; the rest is here.
//! Every [`TokenError`] of [`verify`] means `UNAUTHENTICATED`; a missing scope
//! ([`Officer::has`]) is the handler's `PERMISSION_DENIED`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters as Params, EllipticCurve as Curve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Validation};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_parser::oid_registry as oid;

/// Longest token accepted, in bytes; longer ones are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Smallest RSA modulus accepted for a verification key, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the `rsa` crate verifies up to 4096).
pub const MAX_RSA_BITS: usize = 4096;

/// Pins `jsonwebtoken`'s crypto provider to RustCrypto, so that another crate enabling a second
/// backend cannot make the first use panic. Idempotent; [`verify`] calls it.
pub fn init() {
    static INIT: Once = Once::new();
    // An Err only means that some provider is already in place.
    INIT.call_once(|| _ = DEFAULT_PROVIDER.install_default());
}

/// The current time as seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a token, the `authorization` metadata or a verification key (`InvalidKey`,
/// `InvalidJwks`) was refused, or a development token could not be signed (`Signing`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The `authorization` metadata is not `Bearer <token>`.
    #[error("the authorization metadata is not a usable Bearer credential: {reason}")]
    BadAuthorization {
        /// Which part of `Bearer <token>` is wrong.
        reason: &'static str,
    },
    /// The token is not a well-formed compact JWS/JWT.
    #[error("the token is not a well-formed JWT: {reason}")]
    Malformed {
        /// What is wrong with its structure or encoding.
        reason: String,
    },
    /// The header says `alg: none`: an unsigned token.
    #[error("the token is unsigned (alg \"none\"), which is never accepted")]
    AlgNone,
    /// The header names an HMAC algorithm; shared-secret tokens are refused before any key lookup.
    #[error("the token uses the symmetric algorithm {alg:?}; only asymmetric signatures (EdDSA, ES256, ES384, RS256/384/512, PS256/384/512) are accepted")]
    SymmetricAlgorithm {
        /// The `alg` of the header.
        alg: String,
    },
    /// The header names an algorithm this gateway does not know.
    #[error("the token's algorithm {alg:?} is not supported; use EdDSA, ES256, ES384, RS256/384/512 or PS256/384/512")]
    UnsupportedAlgorithm {
        /// The `alg` of the header.
        alg: String,
    },
    /// The header has a `crit` parameter; no extension is understood here (RFC 7515 §4.1.11).
    #[error("the token's header marks extensions as critical (crit), and none are supported")]
    CriticalHeader,
    /// The header's `kid` names no key of the participant, which has no key without `kid` either.
    #[error("the token's key id {kid:?} names no verification key registered for participant {participant:?}")]
    UnknownKeyId {
        /// The `kid` of the header.
        kid: String,
        /// The participant named by the client certificate.
        participant: String,
    },
    /// The key the header's `kid` selects cannot verify its `alg` (by type or declared `alg`).
    #[error("the verification key {kid:?} is {key}, which cannot verify a {alg} token")]
    KeyTypeMismatch {
        /// The `kid` of the header.
        kid: String,
        /// The kind of the registered key, e.g. "an Ed25519 key".
        key: String,
        /// The `alg` of the header.
        alg: String,
    },
    /// The participant registered no key usable with the token's `alg`.
    #[error("participant {participant:?} has no verification key usable with {alg} (registered: {registered})")]
    NoKeyForAlgorithm {
        /// The `alg` of the header.
        alg: String,
        /// The participant named by the client certificate.
        participant: String,
        /// The kinds of key it did register, or "none".
        registered: String,
    },
    /// No candidate key of the participant verifies the signature.
    #[error("the token's signature does not verify with any of the {tried} candidate key(s) registered for participant {participant:?}")]
    BadSignature {
        /// The participant named by the client certificate.
        participant: String,
        /// How many keys were tried.
        tried: usize,
    },
    /// `iss` is not the participant of the client certificate.
    #[error("the token was issued by {iss:?}, but the client certificate belongs to participant {participant:?}; a participant may only present tokens it issued itself")]
    IssuerMismatch {
        /// The `iss` of the token.
        iss: String,
        /// The participant named by the client certificate.
        participant: String,
    },
    /// `aud` does not contain this gateway.
    #[error("the token's audience does not include this gateway ({audience:?})")]
    AudienceMismatch {
        /// The gateway id the audience must contain.
        audience: String,
    },
    /// A required claim is absent.
    #[error("the token has no {claim:?} claim, which is required")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim is present but of the wrong type or form.
    #[error("the token's {claim:?} claim is invalid: it {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `exp` (plus leeway) has passed.
    #[error("the token expired (exp {exp}, now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// `nbf` (minus leeway) is still in the future.
    #[error("the token is not valid yet (nbf {nbf}, now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The time of the check.
        now: u64,
    },
    /// `iat` is in the future beyond the leeway.
    #[error("the token claims to be issued in the future (iat {iat}, now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The time of the check.
        now: u64,
    },
    /// `exp` lies further ahead than the policy's maximum lifetime (plus leeway).
    #[error(
        "the token's lifetime is too long: exp {exp} is more than {max_secs} s after now ({now})"
    )]
    LifetimeTooLong {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
        /// The policy's maximum lifetime in seconds.
        max_secs: u64,
    },
    /// The token has no `cnf.x5t#S256` and the policy requires certificate binding.
    #[error("the token is not bound to a client certificate (no cnf x5t#S256 claim), which this gateway requires")]
    MissingBinding,
    /// `cnf.x5t#S256` names another certificate than the one the call arrived on.
    #[error("the token is bound to client certificate sha256:{bound}, but the call presented sha256:{presented}")]
    BindingMismatch {
        /// Hex SHA-256 of the certificate the token is bound to.
        bound: String,
        /// Hex SHA-256 of the caller's certificate.
        presented: String,
    },
    /// A configured verification key cannot be used.
    #[error("{key} cannot be used as a token verification key: it {reason}")]
    InvalidKey {
        /// Which key, e.g. "PEM key #2" or "JWKS key #1 (kid \"a\")".
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JWKS document is not `{"keys": [...]}`.
    #[error("the JWKS document is invalid: {reason}")]
    InvalidJwks {
        /// The parse error.
        reason: String,
    },
    /// Minting a development token or handling its key failed.
    #[error("development token signing failed: {reason}")]
    Signing {
        /// The underlying error.
        reason: String,
    },
}

/// What an officer may do; carried in the token's space-separated `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `exchange:submit`: submit records to the exchange.
    ExchangeSubmit,
    /// `exchange:read`: read records from the exchange.
    ExchangeRead,
    /// `subscribe`: open subscriptions.
    Subscribe,
    /// `audit:read`: read the audit log.
    AuditRead,
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 4] = [
        Scope::ExchangeSubmit,
        Scope::ExchangeRead,
        Scope::Subscribe,
        Scope::AuditRead,
    ];

    /// The scope's name in the `scope` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ExchangeSubmit => "exchange:submit",
            Scope::ExchangeRead => "exchange:read",
            Scope::Subscribe => "subscribe",
            Scope::AuditRead => "audit:read",
        }
    }

    /// The scope with this exact name, if any.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The officer a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    /// The token's `sub`: the officer, as the issuing participant names them.
    pub subject: String,
    /// The known scopes of the token's `scope` claim (unknown names are dropped).
    pub scopes: BTreeSet<Scope>,
    /// The token's `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl Officer {
    /// Whether the token grants `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// What the gateway demands of a token beyond a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// This gateway's id; the token's `aud` must contain it.
    pub audience: String,
    /// Longest accepted time from now to `exp` (default 1 h).
    pub max_lifetime: Duration,
    /// Clock skew tolerated for `exp`, `nbf`, `iat` and the lifetime check (default 30 s).
    pub leeway: Duration,
    /// Whether a token without `cnf.x5t#S256` is refused (default true); one that has it is
    /// always checked.
    pub require_binding: bool,
}

impl TokenPolicy {
    /// The default policy for the gateway `audience`: 1 h lifetime, 30 s leeway, binding required.
    pub fn new(audience: impl Into<String>) -> Self {
        TokenPolicy {
            audience: audience.into(),
            max_lifetime: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
            require_binding: true,
        }
    }
}

/// The type of a verification key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519, for `EdDSA`.
    Ed25519,
    /// ECDSA P-256, for `ES256`.
    P256,
    /// ECDSA P-384, for `ES384`.
    P384,
    /// RSA (2048–4096 bits), for `RS256/384/512` and `PS256/384/512`.
    Rsa,
}

impl KeyKind {
    /// Whether a key of this kind can verify tokens signed with `alg`.
    pub fn accepts(self, alg: Algorithm) -> bool {
        self.spec().2.contains(&alg)
    }

    /// The kind's name, the article before it, and the algorithms it verifies.
    fn spec(self) -> (&'static str, &'static str, &'static [Algorithm]) {
        use Algorithm::*;
        match self {
            KeyKind::Ed25519 => ("Ed25519", "an", &[EdDSA]),
            KeyKind::P256 => ("P-256", "a", &[ES256]),
            KeyKind::P384 => ("P-384", "a", &[ES384]),
            KeyKind::Rsa => ("RSA", "an", &[RS256, RS384, RS512, PS256, PS384, PS512]),
        }
    }

    /// "an Ed25519 key", "a P-256 key"…, for messages.
    fn described(self) -> String {
        let (name, article, _) = self.spec();
        format!("{article} {name} key")
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().0)
    }
}

#[derive(Debug, Clone)]
struct KeyEntry {
    kid: Option<String>,
    /// The `alg` a JWK declared, which then is the only one it verifies.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

/// The token verification keys one participant registered. A token's `kid` selects the JWKS
/// keys with that `kid`, or if there are none the PEM keys (which have none); a token without
/// `kid` is tried with every key whose type (and declared `alg`) suits its `alg`.
#[derive(Debug, Clone, Default)]
pub struct TokenKeys {
    keys: Vec<KeyEntry>,
}

impl TokenKeys {
    /// Keys from PEM, one per string: `PUBLIC KEY` (Ed25519, EC P-256/P-384 or RSA) or
    /// `RSA PUBLIC KEY` (PKCS#1); anything else, and RSA outside 2048–4096 bits, is refused.
    pub fn from_pem<S: AsRef<str>>(pems: &[S]) -> Result<Self, TokenError> {
        let keys = pems.iter().enumerate().map(|(i, pem)| {
            let key = format!("PEM key #{}", i + 1);
            pem_key(pem.as_ref()).map_err(|reason| TokenError::InvalidKey { key, reason })
        });
        keys.collect::<Result<_, _>>()
            .map(|keys| TokenKeys { keys })
    }

    /// Keys from a JWKS document (`{"keys": [...]}`) of the same types, skipping encryption
    /// keys and refusing symmetric keys, private material and other curves.
    pub fn from_jwks(json: &str) -> Result<Self, TokenError> {
        // Key by key rather than as a `jwk::JwkSet`, which fails the whole document on one key
        // it cannot represent without saying which, and drops private members unseen.
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<Value>,
        }
        let jwks: Jwks = serde_json::from_str(json).map_err(|e| TokenError::InvalidJwks {
            reason: e.to_string(),
        })?;
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for (i, value) in jwks.keys.iter().enumerate() {
            let kid = value.get("kid").and_then(Value::as_str);
            let kid = kid.map(|kid| format!(" (kid {kid:?})")).unwrap_or_default();
            let key = format!("JWKS key #{}{kid}", i + 1);
            keys.extend(jwk_key(value).map_err(|reason| TokenError::InvalidKey { key, reason })?);
        }
        Ok(TokenKeys { keys })
    }

    /// Adds `other`'s keys to these (e.g. a participant's PEM keys and its JWKS).
    pub fn merge(&mut self, other: TokenKeys) {
        self.keys.extend(other.keys);
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys (every token is then refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each key's id and kind, e.g. for a start-up log line.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, KeyKind)> + '_ {
        self.keys.iter().map(|k| (k.kid.as_deref(), k.kind))
    }

    /// The keys to try for a token signed with `alg` whose header names `kid`.
    fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        participant: &str,
    ) -> Result<Vec<&KeyEntry>, TokenError> {
        // The keys `kid` names; else those without a kid (for a token without one: all keys).
        let by_kid = kid.is_some() && self.keys.iter().any(|k| k.kid.as_deref() == kid);
        let pool: Vec<&KeyEntry> = (self.keys.iter())
            .filter(|k| k.kid.as_deref() == kid || (!by_kid && (kid.is_none() || k.kid.is_none())))
            .collect();
        let usable: Vec<&KeyEntry> = (pool.iter().copied())
            .filter(|k| k.kind.accepts(alg) && k.alg.is_none_or(|a| a == alg))
            .collect();
        if !usable.is_empty() {
            return Ok(usable);
        }
        let (alg, participant) = (format!("{alg:?}"), participant.to_owned());
        match (kid.map(str::to_owned), pool.first()) {
            (Some(kid), None) => Err(TokenError::UnknownKeyId { kid, participant }),
            (Some(kid), Some(first)) if by_kid => {
                let restricted = first.alg.map(|a| format!(" restricted to {a:?}"));
                let key = first.kind.described() + &restricted.unwrap_or_default();
                Err(TokenError::KeyTypeMismatch { kid, key, alg })
            }
            _ => {
                let mut registered: Vec<String> = self.iter().map(|(_, k)| k.to_string()).collect();
                if registered.is_empty() {
                    registered.push("none".to_owned());
                }
                let registered = registered.join(", ");
                Err(TokenError::NoKeyForAlgorithm {
                    alg,
                    participant,
                    registered,
                })
            }
        }
    }
}

/// A PEM public key, its type told by its label and SPKI algorithm.
fn pem_key(pem: &str) -> Result<KeyEntry, String> {
    use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("is not PEM ({e})"))?;
    let unsupported = || "is not an Ed25519, EC P-256/P-384 or RSA public key".to_owned();
    let spki = match pem.label.as_str() {
        "PUBLIC KEY" => match SubjectPublicKeyInfo::from_der(&pem.contents) {
            Ok(([], spki)) => spki,
            _ => return Err(unsupported()),
        },
        "RSA PUBLIC KEY" => return checked(None, None, KeyKind::Rsa, rsa_key(&pem.contents)?),
        // A private key or a certificate, most likely: say what it is and what is expected.
        label => {
            return Err(format!(
                "is a {label:?}; expected a PUBLIC KEY or RSA PUBLIC KEY"
            ))
        }
    };
    let (algorithm, public) = (&spki.algorithm.algorithm, &spki.subject_public_key.data);
    let params = spki.algorithm.parameters.as_ref();
    let curve = params.and_then(|p| p.as_oid().ok());
    let (kind, key) = if *algorithm == oid::OID_SIG_ED25519 {
        (KeyKind::Ed25519, DecodingKey::from_ed_der(public))
    } else if *algorithm == oid::OID_PKCS1_RSAENCRYPTION {
        (KeyKind::Rsa, rsa_key(public)?)
    } else if *algorithm == oid::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let kind = match curve {
            Some(c) if c == oid::OID_EC_P256 => KeyKind::P256,
            Some(c) if c == oid::OID_NIST_EC_P384 => KeyKind::P384,
            _ => return Err("is an EC key on a curve other than P-256 or P-384".to_owned()),
        };
        (kind, DecodingKey::from_ec_der(public))
    } else {
        return Err(unsupported());
    };
    checked(None, None, kind, key)
}

/// A PKCS#1 `RSAPublicKey`, as the modulus and exponent that [`checked`] reads.
fn rsa_key(der: &[u8]) -> Result<DecodingKey, String> {
    use x509_parser::prelude::FromDer;
    match x509_parser::public_key::RSAPublicKey::from_der(der) {
        Ok(([], k)) => Ok(DecodingKey::from_rsa_raw_components(k.modulus, k.exponent)),
        _ => Err("is not a PKCS#1 RSA public key".to_owned()),
    }
}

/// One JWK; `Ok(None)` for a key that is not meant for signatures.
fn jwk_key(value: &Value) -> Result<Option<KeyEntry>, String> {
    if value.get("d").is_some() || value.get("p").is_some() {
        return Err("contains private key material; publish only the public key".to_owned());
    }
    // Before parsing: an encryption key may well be of a type `Jwk` cannot represent (X25519).
    if value.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(None);
    }
    let jwk = Jwk::deserialize(value).map_err(|e| format!("is not a supported JWK ({e})"))?;
    let alg: Option<Algorithm> = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            return Ok(None)
        }
        Some(a) => Some(
            a.to_string()
                .parse()
                .map_err(|_| "declares an unsupported alg")?,
        ),
    };
    let kind = match &jwk.algorithm {
        Params::OctetKeyPair(p) if p.curve == Curve::Ed25519 => KeyKind::Ed25519,
        Params::EllipticCurve(p) if p.curve == Curve::P256 => KeyKind::P256,
        Params::EllipticCurve(p) if p.curve == Curve::P384 => KeyKind::P384,
        Params::RSA(_) => KeyKind::Rsa,
        Params::OctetKey(_) => return Err("is a symmetric (oct) key, not a public key".to_owned()),
        _ => return Err("is on an unsupported curve (use Ed25519, P-256 or P-384)".to_owned()),
    };
    if let Some(alg) = alg.filter(|&a| !kind.accepts(a)) {
        return Err(format!("declares alg {alg:?} but is {}", kind.described()));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("has invalid key data ({e})"))?;
    checked(jwk.common.key_id, alg, kind, key).map(Some)
}

/// The entry for `key` once it is known to work, so that a bad key fails the configuration
/// rather than every token. RSA keys here are always a modulus and exponent.
fn checked(
    kid: Option<String>,
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
) -> Result<KeyEntry, String> {
    match key.kind() {
        // The size limits, then the `rsa` crate's own checks (odd modulus, exponent range),
        // which it would otherwise make, and fail, at every verification.
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            let n = rsa::BigUint::from_bytes_be(n);
            let bits = n.bits();
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "is a {bits}-bit RSA key; {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are accepted"
                ));
            }
            rsa::RsaPublicKey::new(n, rsa::BigUint::from_bytes_be(e))
                .map_err(|e| format!("is not a usable RSA public key ({e})"))?;
        }
        // jsonwebtoken's EdDSA verifier slices the first 32 bytes: shorter would panic.
        _ if kind == KeyKind::Ed25519 && key.as_bytes().len() != 32 => {
            return Err("is not a 32-byte Ed25519 public key".to_owned())
        }
        // Building the verifier parses the key (point on the curve) as verification will.
        _ => {
            (DEFAULT_PROVIDER.verifier_factory)(&kind.spec().2[0], &key)
                .map_err(|e| format!("is not a valid {kind} public key ({e})"))?;
        }
    }
    Ok(KeyEntry {
        kid,
        alg,
        kind,
        key,
    })
}

/// Reads the token out of `authorization` metadata: `Bearer <token>`, the scheme matched
/// case-insensitively (RFC 7235), surrounding spaces ignored.
pub fn bearer(metadata_value: &str) -> Result<&str, TokenError> {
    let mut words = metadata_value.split_ascii_whitespace();
    let reason = match (words.next(), words.next(), words.next()) {
        (None, ..) => "it is empty",
        (Some(scheme), ..) if !scheme.eq_ignore_ascii_case("bearer") => "its scheme is not Bearer",
        (_, None, _) => "no token follows Bearer",
        (_, Some(token), None) => return Ok(token),
        _ => "the token contains whitespace",
    };
    Err(TokenError::BadAuthorization { reason })
}

/// Verifies an officer token presented by `participant_id` over a client certificate whose
/// SHA-256 is `cert_sha256`, with the keys `participant_id` registered (never keys found by the
/// token's `iss`): the header's `alg` and `crit`, the claims (times against `now_unix`, the
/// binding), then the signature with the keys its `kid` and `alg` select, and `aud`.
pub fn verify(
    token: &str,
    participant_id: &str,
    keys: &TokenKeys,
    cert_sha256: &[u8; 32],
    policy: &TokenPolicy,
    now_unix: u64,
) -> Result<Officer, TokenError> {
    init();
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed(format!(
            "it is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let header = asymmetric_header(token)?;
    if token.ends_with('.') {
        // jsonwebtoken would call an empty signature merely wrong.
        return Err(malformed("its signature is empty"));
    }
    // The claims are checked before any key is used (refusing on an unverified claim is safe),
    // so that a garbled payload is Malformed rather than a bad signature, and a token of
    // another participant is named as such.
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode(token)
        .map_err(|e| malformed(format!("its payload is not a JSON claims object ({e})")))?
        .claims;
    let iss = string_claim("iss", &claims.iss)?;
    if iss != participant_id {
        let (iss, participant) = (iss.to_owned(), participant_id.to_owned());
        return Err(TokenError::IssuerMismatch { iss, participant });
    }
    let exp = numeric_date("exp", &claims.exp)?.ok_or(TokenError::MissingClaim { claim: "exp" })?;
    if claims.aud.is_none() {
        return Err(TokenError::MissingClaim { claim: "aud" });
    }
    let subject = string_claim("sub", &claims.sub)?;
    if subject.is_empty() {
        return Err(invalid("sub", "is empty"));
    }
    let (now, max_secs) = (now_unix, policy.max_lifetime.as_secs());
    let soon = now.saturating_add(policy.leeway.as_secs());
    if now >= exp.saturating_add(policy.leeway.as_secs()) {
        return Err(TokenError::Expired { exp, now });
    }
    if exp > soon.saturating_add(max_secs) {
        return Err(TokenError::LifetimeTooLong { exp, now, max_secs });
    }
    if let Some(nbf) = numeric_date("nbf", &claims.nbf)?.filter(|&nbf| nbf > soon) {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    if let Some(iat) = numeric_date("iat", &claims.iat)?.filter(|&iat| iat > soon) {
        return Err(TokenError::IssuedInFuture { iat, now });
    }
    match &claims.cnf {
        Some(cnf) => check_binding(cnf, cert_sha256)?,
        None if policy.require_binding => return Err(TokenError::MissingBinding),
        None => {}
    }
    let s = claims.scope.as_ref().map_or(Some(""), Value::as_str);
    let s = s.ok_or_else(|| invalid("scope", "is not a space-separated string"))?;
    let officer = Officer {
        subject: subject.to_owned(),
        scopes: s
            .split_ascii_whitespace()
            .filter_map(Scope::parse)
            .collect(),
        expires_at: exp,
    };

    let candidates = keys.candidates(header.alg, header.kid.as_deref(), participant_id)?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false; // checked above, against the caller's clock
    validation.set_required_spec_claims(&["aud"]);
    validation.set_audience(&[&policy.audience]);
    for entry in &candidates {
        // Key errors cannot occur: a key's type and data are checked when it is loaded.
        let e = match jsonwebtoken::decode::<IgnoredAny>(token, &entry.key, &validation) {
            Ok(_) => return Ok(officer),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
            Err(e) => e,
        };
        let audience = policy.audience.clone();
        return Err(match e.kind() {
            ErrorKind::InvalidAudience => TokenError::AudienceMismatch { audience },
            // `aud` is present (see above): jsonwebtoken says missing for the wrong type.
            ErrorKind::MissingRequiredClaim(_) => {
                invalid("aud", "is not a string or a list of them")
            }
            _ => malformed(e.to_string()),
        });
    }
    let (participant, tried) = (participant_id.to_owned(), candidates.len());
    Err(TokenError::BadSignature { participant, tried })
}

/// The claims looked at, kept as JSON values so that one of the wrong type is named in the
/// error; serde refuses duplicate names.
#[derive(Deserialize)]
struct Claims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    scope: Option<Value>,
    cnf: Option<Value>,
    /// With a flattened member serde reads only a JSON object, not an array field by field.
    #[serde(flatten)]
    _others: HashMap<String, IgnoredAny>,
}

fn malformed(reason: impl Into<String>) -> TokenError {
    TokenError::Malformed {
        reason: reason.into(),
    }
}

fn invalid(claim: &'static str, reason: &str) -> TokenError {
    let reason = reason.to_owned();
    TokenError::InvalidClaim { claim, reason }
}

/// The header of `token` if its `alg` is one this gateway verifies and it has no `crit`.
fn asymmetric_header(token: &str) -> Result<jsonwebtoken::Header, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        // jsonwebtoken has no `alg` outside its enum (`none`, ES512…) and calls such a header
        // bad JSON; a refused algorithm should say so.
        let head = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap_or_default());
        let head: Option<Value> = head
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok());
        match head
            .as_ref()
            .and_then(|h| Some(h.get("alg")?.as_str()?.to_owned()))
        {
            Some(alg) if alg.eq_ignore_ascii_case("none") => TokenError::AlgNone,
            Some(alg) if alg.parse::<Algorithm>().is_err() => {
                TokenError::UnsupportedAlgorithm { alg }
            }
            _ => malformed(format!("its header is not a JSON object with an alg ({e})")),
        }
    })?;
    match header.alg.family() {
        AlgorithmFamily::Hmac => Err(TokenError::SymmetricAlgorithm {
            alg: format!("{:?}", header.alg),
        }),
        _ if header.crit.is_some() => Err(TokenError::CriticalHeader),
        _ => Ok(header),
    }
}

fn string_claim<'a>(claim: &'static str, value: &'a Option<Value>) -> Result<&'a str, TokenError> {
    let v = value.as_ref().ok_or(TokenError::MissingClaim { claim })?;
    v.as_str().ok_or_else(|| invalid(claim, "is not a string"))
}

/// A NumericDate (RFC 7519 §2), if present: non-negative seconds, fractions truncated.
fn numeric_date(claim: &'static str, value: &Option<Value>) -> Result<Option<u64>, TokenError> {
    let secs = match value.as_ref().map(|v| (v.as_u64(), v.as_f64())) {
        None => return Ok(None),
        Some((Some(secs), _)) => secs,
        // The cast saturates; the range check keeps it meaningful.
        Some((None, Some(f))) if (0.0..u64::MAX as f64).contains(&f) => f as u64,
        Some(_) => return Err(invalid(claim, "is not a non-negative number of seconds")),
    };
    Ok(Some(secs))
}

/// RFC 8705 certificate binding: `cnf.x5t#S256` must be the caller's certificate.
fn check_binding(cnf: &Value, cert: &[u8; 32]) -> Result<(), TokenError> {
    // Another confirmation method (e.g. DPoP "jkt") cannot be checked here, so must not pass.
    let bound = (cnf.get("x5t#S256").and_then(Value::as_str))
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .filter(|b| b.len() == 32)
        .ok_or_else(|| invalid("cnf", "has no x5t#S256 (RFC 8705) holding a SHA-256 digest"))?;
    if bound != cert {
        let (bound, presented) = (hex::encode(bound), hex::encode(cert));
        return Err(TokenError::BindingMismatch { bound, presented });
    }
    Ok(())
}

/// A bounded cache of verified tokens, so that a token presented again skips the signature
/// check. A hit needs the same token, participant and certificate, and an `exp` (plus leeway)
/// still ahead. When full, expired entries go first, then an arbitrary half. Call
/// [`TokenCache::clear`] when keys or the [`TokenPolicy`] change.
#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Officer>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(TokenCache::DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    /// Capacity of [`TokenCache::default`].
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A cache holding at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        let entries = Mutex::default();
        TokenCache { capacity, entries }
    }

    /// Like [`verify`], answering from the cache when this token was already verified for the
    /// same participant and certificate and has not expired.
    pub fn verify(
        &self,
        token: &str,
        participant_id: &str,
        keys: &TokenKeys,
        cert_sha256: &[u8; 32],
        policy: &TokenPolicy,
        now_unix: u64,
    ) -> Result<Officer, TokenError> {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(cert_sha256)
            .chain_update((participant_id.len() as u64).to_be_bytes())
            .chain_update(participant_id)
            .chain_update(token)
            .finalize()
            .into();
        let live = |o: &Officer| now_unix < o.expires_at.saturating_add(policy.leeway.as_secs());
        let mut entries = self.lock();
        if let Some(officer) = entries.get(&digest).filter(|o| live(o)) {
            return Ok(officer.clone());
        }
        entries.remove(&digest); // expired, if it was there
        drop(entries);
        let officer = verify(token, participant_id, keys, cert_sha256, policy, now_unix)?;
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, o| live(o));
        }
        if entries.len() >= self.capacity {
            let mut kept = 0;
            entries.retain(|_, _| {
                kept += 1;
                kept <= self.capacity / 2
            });
        }
        if self.capacity > 0 {
            entries.insert(digest, officer.clone());
        }
        Ok(officer)
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached token.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Officer>> {
        // Each operation is a single map call, so a poisoned lock still holds a consistent map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::token::DevSigner;
    use jsonwebtoken::{EncodingKey, Header};
    use rand_core::OsRng;
    use serde_json::json;
    use std::sync::OnceLock;

    const NOW: u64 = 1_700_000_000;
    const GATEWAY: &str = "gateway-eu-1";
    const CUSTOMS: &str = "customs-nl";
    const MARKET: &str = "marketplace-x";

    fn policy() -> TokenPolicy {
        TokenPolicy::new(GATEWAY)
    }

    fn cert(n: u8) -> [u8; 32] {
        crate::auth::identity::certificate_sha256(&[n; 300])
    }

    fn x5t(cert: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(cert)
    }

    /// Valid claims for officer "officer-7" of CUSTOMS bound to cert(1).
    fn claims() -> Value {
        json!({
            "iss": CUSTOMS,
            "sub": "officer-7",
            "aud": GATEWAY,
            "iat": NOW - 10,
            "exp": NOW + 600,
            "jti": "t-1",
            "scope": "exchange:submit audit:read",
            "cnf": { "x5t#S256": x5t(&cert(1)) },
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        if let Some(obj) = base.as_object_mut() {
            obj.remove(key);
        }
        base
    }

    fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        init();
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    struct Ed {
        signer: DevSigner,
        keys: TokenKeys,
    }

    fn ed() -> Ed {
        let signer = DevSigner::generate().unwrap();
        let keys = TokenKeys::from_pem(&[signer.public_key_pem().unwrap()]).unwrap();
        Ed { signer, keys }
    }

    fn check(token: &str, keys: &TokenKeys) -> Result<Officer, TokenError> {
        verify(token, CUSTOMS, keys, &cert(1), &policy(), NOW)
    }

    struct Ec {
        encoding: EncodingKey,
        public_pem: String,
        verifying: p256::ecdsa::VerifyingKey,
    }

    fn ec() -> Ec {
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        let signing = p256::ecdsa::SigningKey::random(&mut OsRng);
        let private_pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let verifying = *signing.verifying_key();
        Ec {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
            public_pem: verifying.to_public_key_pem(LineEnding::LF).unwrap(),
            verifying,
        }
    }

    struct Rsa {
        encoding: EncodingKey,
        public_pem: String,
        public: rsa::RsaPublicKey,
    }

    fn make_rsa(bits: usize) -> Rsa {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut OsRng, bits).unwrap();
        let pem = private.to_pkcs1_pem(LineEnding::LF).unwrap();
        let public = private.to_public_key();
        Rsa {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            public,
        }
    }

    /// RSA key generation is slow in debug builds: two keys, made once.
    fn rsa_a() -> &'static Rsa {
        static KEY: OnceLock<Rsa> = OnceLock::new();
        KEY.get_or_init(|| make_rsa(2048))
    }

    fn rsa_b() -> &'static Rsa {
        static KEY: OnceLock<Rsa> = OnceLock::new();
        KEY.get_or_init(|| make_rsa(2048))
    }

    #[test]
    fn init_is_idempotent() {
        init();
        init();
        let e = ed();
        let token = e.signer.sign_claims(&claims()).unwrap();
        assert!(check(&token, &e.keys).is_ok());
    }

    #[test]
    fn valid_eddsa_token_passes_with_sub_and_scopes() {
        let e = ed();
        let token = e.signer.sign_claims(&claims()).unwrap();
        let officer = check(&token, &e.keys).unwrap();
        assert_eq!(officer.subject, "officer-7");
        assert_eq!(
            officer.scopes,
            BTreeSet::from([Scope::ExchangeSubmit, Scope::AuditRead])
        );
        assert!(officer.has(Scope::ExchangeSubmit));
        assert!(officer.has(Scope::AuditRead));
        assert!(!officer.has(Scope::Subscribe));
        assert_eq!(officer.expires_at, NOW + 600);
    }

    #[test]
    fn minted_token_passes() {
        let e = ed();
        let token = e
            .signer
            .mint(
                CUSTOMS,
                "officer-9",
                GATEWAY,
                &[Scope::Subscribe, Scope::ExchangeRead],
                Duration::from_secs(900),
                &cert(1),
                NOW,
            )
            .unwrap();
        let officer = check(&token, &e.keys).unwrap();
        assert_eq!(officer.subject, "officer-9");
        assert_eq!(
            officer.scopes,
            BTreeSet::from([Scope::Subscribe, Scope::ExchangeRead])
        );
        assert_eq!(officer.expires_at, NOW + 900);
        // Officer no longer carries the jti; mint still puts a random 128-bit one in the token.
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    }

    #[test]
    fn unknown_scopes_are_ignored() {
        let e = ed();
        let c = with(
            claims(),
            "scope",
            json!("openid subscribe customs:seize exchange:read"),
        );
        let officer = check(&e.signer.sign_claims(&c).unwrap(), &e.keys).unwrap();
        assert_eq!(
            officer.scopes,
            BTreeSet::from([Scope::Subscribe, Scope::ExchangeRead])
        );
        let none = without(claims(), "scope");
        let officer = check(&e.signer.sign_claims(&none).unwrap(), &e.keys).unwrap();
        assert!(officer.scopes.is_empty());
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(scope.to_string(), scope.as_str());
        }
        assert_eq!(Scope::parse("Subscribe"), None);
    }

    #[test]
    fn valid_es256_token_passes() {
        let k = ec();
        let keys = TokenKeys::from_pem(&[k.public_pem.as_str()]).unwrap();
        assert_eq!(keys.iter().collect::<Vec<_>>(), vec![(None, KeyKind::P256)]);
        let token = sign(Algorithm::ES256, &k.encoding, None, &claims());
        assert_eq!(check(&token, &keys).unwrap().subject, "officer-7");
    }

    #[test]
    fn valid_rs256_token_passes() {
        let k = rsa_a();
        let keys = TokenKeys::from_pem(&[k.public_pem.as_str()]).unwrap();
        let token = sign(Algorithm::RS256, &k.encoding, None, &claims());
        assert_eq!(check(&token, &keys).unwrap().subject, "officer-7");
    }

    #[test]
    fn valid_ps256_token_passes() {
        let k = rsa_a();
        let keys = TokenKeys::from_pem(&[k.public_pem.as_str()]).unwrap();
        let token = sign(Algorithm::PS256, &k.encoding, None, &claims());
        assert_eq!(check(&token, &keys).unwrap().subject, "officer-7");
    }

    #[test]
    fn pkcs1_rsa_public_pem_is_accepted() {
        use rsa::pkcs1::{EncodeRsaPublicKey as _, LineEnding};
        let k = rsa_a();
        let pem = k.public.to_pkcs1_pem(LineEnding::LF).unwrap();
        let keys = TokenKeys::from_pem(&[pem]).unwrap();
        let token = sign(Algorithm::RS256, &k.encoding, None, &claims());
        assert!(check(&token, &keys).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let e = ed();
        let header = json!({ "alg": "none", "typ": "JWT" });
        let token = format!("{}.{}.", b64(&header), b64(&claims()));
        assert_eq!(check(&token, &e.keys), Err(TokenError::AlgNone));
        let header = json!({ "alg": "NONE" });
        let token = format!("{}.{}.", b64(&header), b64(&claims()));
        assert_eq!(check(&token, &e.keys), Err(TokenError::AlgNone));
    }

    #[test]
    fn hs256_signed_with_public_key_pem_is_refused() {
        let k = rsa_a();
        let keys = TokenKeys::from_pem(&[k.public_pem.as_str()]).unwrap();
        let forged = EncodingKey::from_secret(k.public_pem.as_bytes());
        let token = sign(Algorithm::HS256, &forged, None, &claims());
        assert_eq!(
            check(&token, &keys),
            Err(TokenError::SymmetricAlgorithm {
                alg: "HS256".into()
            })
        );
        // Refused before key lookup: also with no keys at all.
        assert!(matches!(
            check(&token, &TokenKeys::default()),
            Err(TokenError::SymmetricAlgorithm { .. })
        ));
    }

    #[test]
    fn unsupported_alg_and_crit_are_refused() {
        let e = ed();
        let token = format!("{}.{}.c2ln", b64(&json!({"alg": "ES512"})), b64(&claims()));
        assert!(matches!(
            check(&token, &e.keys),
            Err(TokenError::UnsupportedAlgorithm { .. })
        ));
        let token = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "EdDSA", "crit": ["exp"]})),
            b64(&claims())
        );
        assert_eq!(check(&token, &e.keys), Err(TokenError::CriticalHeader));
    }

    #[test]
    fn key_of_wrong_type_for_alg_is_refused() {
        // kid names an Ed25519 key, token is ES256.
        let e = ed();
        let jwks = e.signer.public_jwks();
        let signer = DevSigner::from_pkcs8_pem(&e.signer.to_pkcs8_pem().unwrap())
            .unwrap()
            .with_kid("k1");
        let keys = TokenKeys::from_jwks(&signer.public_jwks()).unwrap();
        let k = ec();
        let token = sign(Algorithm::ES256, &k.encoding, Some("k1"), &claims());
        let err = check(&token, &keys).unwrap_err();
        assert!(matches!(err, TokenError::KeyTypeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("Ed25519"), "{err}");
        // Without kid: the participant has no key for ES256.
        let keys = TokenKeys::from_jwks(&jwks).unwrap();
        let token = sign(Algorithm::ES256, &k.encoding, None, &claims());
        let err = check(&token, &keys).unwrap_err();
        assert!(matches!(err, TokenError::NoKeyForAlgorithm { .. }), "{err}");
    }

    #[test]
    fn rs256_token_of_another_participant_is_refused_as_issuer_mismatch() {
        // MARKET registered rsa_b and issues a token for its own officer;
        // CUSTOMS presents it over CUSTOMS's certificate.
        let b = rsa_b();
        let c = with(claims(), "iss", json!(MARKET));
        let token = sign(Algorithm::RS256, &b.encoding, None, &c);
        let customs_keys = TokenKeys::from_pem(&[rsa_a().public_pem.as_str()]).unwrap();
        let err = check(&token, &customs_keys).unwrap_err();
        assert_eq!(
            err,
            TokenError::IssuerMismatch {
                iss: MARKET.into(),
                participant: CUSTOMS.into()
            }
        );
        assert!(
            err.to_string().contains("issued by \"marketplace-x\""),
            "{err}"
        );
        // It is valid for MARKET itself (with MARKET's keys and certificate).
        let market_keys = TokenKeys::from_pem(&[b.public_pem.as_str()]).unwrap();
        assert!(verify(&token, MARKET, &market_keys, &cert(1), &policy(), NOW).is_ok());
    }

    #[test]
    fn rs256_token_signed_with_another_participants_key_is_refused() {
        // iss claims CUSTOMS, but the signature is MARKET's key (rsa_b).
        let token = sign(Algorithm::RS256, &rsa_b().encoding, None, &claims());
        // CUSTOMS registered only an Ed25519 key: nothing can verify RS256.
        let err = check(&token, &ed().keys).unwrap_err();
        assert!(matches!(err, TokenError::NoKeyForAlgorithm { .. }), "{err}");
        assert!(err.to_string().contains("RS256"), "{err}");
        // CUSTOMS registered its own RSA key: the signature does not verify.
        let keys = TokenKeys::from_pem(&[rsa_a().public_pem.as_str()]).unwrap();
        let err = check(&token, &keys).unwrap_err();
        assert_eq!(
            err,
            TokenError::BadSignature {
                participant: CUSTOMS.into(),
                tried: 1
            }
        );
    }

    #[test]
    fn tampered_payload_has_bad_signature() {
        let e = ed();
        let token = e.signer.sign_claims(&claims()).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&with(claims(), "scope", json!("audit:read subscribe")));
        parts[1] = &forged;
        let err = check(&parts.join("."), &e.keys).unwrap_err();
        assert!(matches!(err, TokenError::BadSignature { .. }), "{err}");
        // Signed by another Ed25519 key altogether.
        let other = ed();
        let token = other.signer.sign_claims(&claims()).unwrap();
        assert!(matches!(
            check(&token, &e.keys),
            Err(TokenError::BadSignature { .. })
        ));
    }

    #[test]
    fn expired_token_is_refused() {
        let e = ed();
        let c = with(claims(), "exp", json!(NOW - 31));
        let token = e.signer.sign_claims(&c).unwrap();
        assert_eq!(
            check(&token, &e.keys),
            Err(TokenError::Expired {
                exp: NOW - 31,
                now: NOW
            })
        );
        // Within the 30 s leeway it still passes.
        let c = with(claims(), "exp", json!(NOW - 29));
        assert!(check(&e.signer.sign_claims(&c).unwrap(), &e.keys).is_ok());
    }

    #[test]
    fn token_not_yet_valid_is_refused() {
        let e = ed();
        let c = with(claims(), "nbf", json!(NOW + 31));
        assert_eq!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::NotYetValid {
                nbf: NOW + 31,
                now: NOW
            })
        );
        let c = with(claims(), "nbf", json!(NOW + 30));
        assert!(check(&e.signer.sign_claims(&c).unwrap(), &e.keys).is_ok());
    }

    #[test]
    fn token_issued_in_the_future_is_refused() {
        let e = ed();
        let c = with(claims(), "iat", json!(NOW + 120));
        assert_eq!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::IssuedInFuture {
                iat: NOW + 120,
                now: NOW
            })
        );
        let c = with(claims(), "iat", json!(NOW + 20));
        assert!(check(&e.signer.sign_claims(&c).unwrap(), &e.keys).is_ok());
    }

    #[test]
    fn lifetime_too_long_is_refused() {
        let e = ed();
        let c = with(claims(), "exp", json!(NOW + 3600 + 31));
        let err = check(&e.signer.sign_claims(&c).unwrap(), &e.keys).unwrap_err();
        assert_eq!(
            err,
            TokenError::LifetimeTooLong {
                exp: NOW + 3631,
                now: NOW,
                max_secs: 3600
            }
        );
        assert!(err.to_string().contains("lifetime is too long"), "{err}");
        let c = with(claims(), "exp", json!(NOW + 3600));
        assert!(check(&e.signer.sign_claims(&c).unwrap(), &e.keys).is_ok());
    }

    #[test]
    fn wrong_audience_is_refused() {
        let e = ed();
        let c = with(claims(), "aud", json!("gateway-us-1"));
        assert_eq!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::AudienceMismatch {
                audience: GATEWAY.into()
            })
        );
        let c = with(claims(), "aud", json!(["other", GATEWAY]));
        assert!(check(&e.signer.sign_claims(&c).unwrap(), &e.keys).is_ok());
        let c = without(claims(), "aud");
        assert_eq!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::MissingClaim { claim: "aud" })
        );
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let e = ed();
        let c = with(claims(), "iss", json!("customs-be"));
        assert!(matches!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::IssuerMismatch { .. })
        ));
        let c = without(claims(), "iss");
        assert_eq!(
            check(&e.signer.sign_claims(&c).unwrap(), &e.keys),
            Err(TokenError::MissingClaim { claim: "iss" })
        );
    }

    #[test]
    fn token_bound_to_another_certificate_is_refused() {
        let e = ed();
        let token = e.signer.sign_claims(&claims()).unwrap();
        let err = verify(&token, CUSTOMS, &e.keys, &cert(2), &policy(), NOW).unwrap_err();
        assert_eq!(
            err,
            TokenError::BindingMismatch {
                bound: hex::encode(cert(1)),
                presented: hex::encode(cert(2)),
            }
        );
        // A mismatch fails even when binding is not required.
        let lax = TokenPolicy {
            require_binding: false,
            ..policy()
        };
        assert!(matches!(
            verify(&token, CUSTOMS, &e.keys, &cert(2), &lax, NOW),
            Err(TokenError::BindingMismatch { .. })
        ));
    }

    #[test]
    fn missing_binding_is_refused_when_required() {
        let e = ed();
        let token = e.signer.sign_claims(&without(claims(), "cnf")).unwrap();
        assert_eq!(check(&token, &e.keys), Err(TokenError::MissingBinding));
    }

    #[test]
    fn missing_binding_is_accepted_when_not_required() {
        let e = ed();
        let token = e.signer.sign_claims(&without(claims(), "cnf")).unwrap();
        let lax = TokenPolicy {
            require_binding: false,
            ..policy()
        };
        let officer = verify(&token, CUSTOMS, &e.keys, &cert(1), &lax, NOW).unwrap();
        assert_eq!(officer.subject, "officer-7");
    }

    #[test]
    fn unsupported_confirmation_method_is_refused() {
        let e = ed();
        let c = with(claims(), "cnf", json!({ "jkt": "abc" }));
        let lax = TokenPolicy {
            require_binding: false,
            ..policy()
        };
        let token = e.signer.sign_claims(&c).unwrap();
        assert!(matches!(
            verify(&token, CUSTOMS, &e.keys, &cert(1), &lax, NOW),
            Err(TokenError::InvalidClaim { claim: "cnf", .. })
        ));
    }

    #[test]
    fn missing_sub_is_refused() {
        let e = ed();
        let token = e.signer.sign_claims(&without(claims(), "sub")).unwrap();
        assert_eq!(
            check(&token, &e.keys),
            Err(TokenError::MissingClaim { claim: "sub" })
        );
        let token = e
            .signer
            .sign_claims(&with(claims(), "sub", json!("")))
            .unwrap();
        assert!(matches!(
            check(&token, &e.keys),
            Err(TokenError::InvalidClaim { claim: "sub", .. })
        ));
    }

    #[test]
    fn missing_exp_is_refused() {
        let e = ed();
        let token = e.signer.sign_claims(&without(claims(), "exp")).unwrap();
        assert_eq!(
            check(&token, &e.keys),
            Err(TokenError::MissingClaim { claim: "exp" })
        );
        let token = e
            .signer
            .sign_claims(&with(claims(), "exp", json!("tomorrow")))
            .unwrap();
        assert!(matches!(
            check(&token, &e.keys),
            Err(TokenError::InvalidClaim { claim: "exp", .. })
        ));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let e = ed();
        let good = e.signer.sign_claims(&claims()).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{good}.extra"),
            format!(".{}.{}", parts[1], parts[2]),
            format!("{}..{}", parts[0], parts[2]),
            format!("{}.{}.", parts[0], parts[1]),
            format!("!!.{}.{}", parts[1], parts[2]),
            format!("{}.%%.{}", parts[0], parts[2]),
            format!("{}.{}.*", parts[0], parts[1]),
            format!("{}.{}.{}", b64(&json!(["EdDSA"])), parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], b64(&json!("text")), parts[2]),
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!([CUSTOMS, "officer-7"])),
                parts[2]
            ),
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(r#"{"sub":"a","sub":"b"}"#),
                parts[2]
            ),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for case in &cases {
            let err = check(case, &e.keys).unwrap_err();
            assert!(
                matches!(err, TokenError::Malformed { .. }),
                "{case:.60}: {err}"
            );
        }
    }

    #[test]
    fn bearer_parses_authorization_metadata() {
        assert_eq!(bearer("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer("bearer x"), Ok("x"));
        assert_eq!(bearer("BEARER  x "), Ok("x"));
        for bad in [
            "Basic x",
            "",
            "   ",
            "Bearer",
            "Bearer   ",
            "Bearerx",
            "Bearer a b",
        ] {
            assert!(
                matches!(bearer(bad), Err(TokenError::BadAuthorization { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer("Basic x").unwrap_err().to_string(),
            "the authorization metadata is not a usable Bearer credential: its scheme is not Bearer"
        );
    }

    #[test]
    fn cache_hit_returns_the_same_officer_without_verifying_again() {
        let e = ed();
        let cache = TokenCache::default();
        let token = e.signer.sign_claims(&claims()).unwrap();
        let first = cache
            .verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), NOW)
            .unwrap();
        assert_eq!(cache.len(), 1);
        // No keys at all: only a cache hit can succeed.
        let none = TokenKeys::default();
        let second = cache
            .verify(&token, CUSTOMS, &none, &cert(1), &policy(), NOW + 60)
            .unwrap();
        assert_eq!(first, second);
        cache.clear();
        assert!(cache.is_empty());
        assert!(cache
            .verify(&token, CUSTOMS, &none, &cert(1), &policy(), NOW + 60)
            .is_err());
    }

    #[test]
    fn cache_does_not_accept_another_certificate_or_participant() {
        let e = ed();
        let cache = TokenCache::default();
        let token = e.signer.sign_claims(&claims()).unwrap();
        cache
            .verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), NOW)
            .unwrap();
        assert!(matches!(
            cache.verify(&token, CUSTOMS, &e.keys, &cert(2), &policy(), NOW),
            Err(TokenError::BindingMismatch { .. })
        ));
        assert!(matches!(
            cache.verify(&token, MARKET, &e.keys, &cert(1), &policy(), NOW),
            Err(TokenError::IssuerMismatch { .. })
        ));
        // The entry of the rightful holder is still there.
        let none = TokenKeys::default();
        assert!(cache
            .verify(&token, CUSTOMS, &none, &cert(1), &policy(), NOW)
            .is_ok());
    }

    #[test]
    fn cache_does_not_return_expired_entries() {
        let e = ed();
        let cache = TokenCache::default();
        let token = e.signer.sign_claims(&claims()).unwrap();
        cache
            .verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), NOW)
            .unwrap();
        let later = NOW + 600 + 30;
        assert_eq!(
            cache.verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), later),
            Err(TokenError::Expired {
                exp: NOW + 600,
                now: later
            })
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_stays_bounded() {
        let e = ed();
        let cache = TokenCache::new(8);
        for i in 0..40u64 {
            let c = with(claims(), "jti", json!(format!("t-{i}")));
            let token = e.signer.sign_claims(&c).unwrap();
            cache
                .verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), NOW)
                .unwrap();
            assert!(cache.len() <= 8);
        }
        // The most recent token is still cached.
        let c = with(claims(), "jti", json!("t-39"));
        let token = e.signer.sign_claims(&c).unwrap();
        assert!(cache
            .verify(
                &token,
                CUSTOMS,
                &TokenKeys::default(),
                &cert(1),
                &policy(),
                NOW
            )
            .is_ok());
        let off = TokenCache::new(0);
        off.verify(&token, CUSTOMS, &e.keys, &cert(1), &policy(), NOW)
            .unwrap();
        assert!(off.is_empty());
    }

    fn jwks_fixture(ed: &DevSigner, ec: &Ec, rsa: &Rsa) -> String {
        use rsa::traits::PublicKeyParts as _;
        let point = ec.verifying.to_encoded_point(false);
        let (x, y) = (point.x().unwrap(), point.y().unwrap());
        json!({ "keys": [
            {
                "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(ed.public_key_bytes()),
            },
            {
                "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            },
            {
                "kty": "RSA", "kid": "rsa-1", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(rsa.public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(rsa.public.e().to_bytes_be()),
            },
            {
                "kty": "RSA", "kid": "rsa-enc", "use": "enc",
                "n": URL_SAFE_NO_PAD.encode(rsa.public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(rsa.public.e().to_bytes_be()),
            },
        ]})
        .to_string()
    }

    #[test]
    fn jwks_with_okp_ec_rsa_keys_selects_by_kid() {
        let e = ed();
        let ec_key = ec();
        let rsa_key = rsa_a();
        let keys = TokenKeys::from_jwks(&jwks_fixture(&e.signer, &ec_key, rsa_key)).unwrap();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            vec![
                (Some("ed-1"), KeyKind::Ed25519),
                (Some("ec-1"), KeyKind::P256),
                (Some("rsa-1"), KeyKind::Rsa),
            ]
        );

        let signer = DevSigner::from_pkcs8_pem(&e.signer.to_pkcs8_pem().unwrap())
            .unwrap()
            .with_kid("ed-1");
        assert!(check(&signer.sign_claims(&claims()).unwrap(), &keys).is_ok());
        let es = sign(Algorithm::ES256, &ec_key.encoding, Some("ec-1"), &claims());
        assert!(check(&es, &keys).is_ok());
        let rs = sign(
            Algorithm::RS256,
            &rsa_key.encoding,
            Some("rsa-1"),
            &claims(),
        );
        assert!(check(&rs, &keys).is_ok());
        // Without kid every compatible key is tried.
        let rs = sign(Algorithm::RS256, &rsa_key.encoding, None, &claims());
        assert!(check(&rs, &keys).is_ok());

        // A JWK's declared alg restricts it: PS256 with the RS256 key.
        let ps = sign(
            Algorithm::PS256,
            &rsa_key.encoding,
            Some("rsa-1"),
            &claims(),
        );
        let err = check(&ps, &keys).unwrap_err();
        assert!(matches!(err, TokenError::KeyTypeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("restricted to RS256"), "{err}");
        // kid of a key of another type.
        let wrong = sign(Algorithm::ES256, &ec_key.encoding, Some("ed-1"), &claims());
        assert!(matches!(
            check(&wrong, &keys),
            Err(TokenError::KeyTypeMismatch { .. })
        ));
        // Unknown kid (and no key without kid to fall back to).
        let unknown = sign(Algorithm::ES256, &ec_key.encoding, Some("ec-9"), &claims());
        assert_eq!(
            check(&unknown, &keys),
            Err(TokenError::UnknownKeyId {
                kid: "ec-9".into(),
                participant: CUSTOMS.into()
            })
        );
        // The kid selects the key: a token from another Ed key claiming "ed-1" fails.
        let other = ed().signer.with_kid("ed-1");
        assert!(matches!(
            check(&other.sign_claims(&claims()).unwrap(), &keys),
            Err(TokenError::BadSignature { tried: 1, .. })
        ));
    }

    #[test]
    fn token_with_kid_falls_back_to_keys_without_kid() {
        let e = ed();
        let signer = DevSigner::from_pkcs8_pem(&e.signer.to_pkcs8_pem().unwrap())
            .unwrap()
            .with_kid("2024-rotation");
        let mut keys = ed().keys;
        keys.merge(e.keys);
        assert_eq!(keys.len(), 2);
        let officer = check(&signer.sign_claims(&claims()).unwrap(), &keys).unwrap();
        assert_eq!(officer.subject, "officer-7");
    }

    #[test]
    fn jwks_refuses_unusable_keys() {
        let bad = [
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}),
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}),
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32]), "d": "AAAA"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}),
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "ES256", "x": URL_SAFE_NO_PAD.encode(ed().signer.public_key_bytes())}]}),
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
        ];
        for jwks in &bad {
            let err = TokenKeys::from_jwks(&jwks.to_string()).unwrap_err();
            assert!(
                matches!(err, TokenError::InvalidKey { .. }),
                "{jwks}: {err}"
            );
        }
        assert!(matches!(
            TokenKeys::from_jwks("{\"kids\": []}"),
            Err(TokenError::InvalidJwks { .. })
        ));
        assert!(TokenKeys::from_jwks("{\"keys\": []}").unwrap().is_empty());
    }

    #[test]
    fn pem_refuses_private_keys_certificates_and_garbage() {
        let e = ed();
        let private = e.signer.to_pkcs8_pem().unwrap();
        let cases = [
            private,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
            "not a key".to_owned(),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
        ];
        for pem in &cases {
            let err = TokenKeys::from_pem(&[e.signer.public_key_pem().unwrap(), pem.clone()])
                .unwrap_err();
            match &err {
                TokenError::InvalidKey { key, .. } => assert_eq!(key, "PEM key #2"),
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn small_rsa_key_is_refused() {
        let small = make_rsa(1024);
        let err = TokenKeys::from_pem(&[small.public_pem]).unwrap_err();
        assert!(err.to_string().contains("1024-bit"), "{err}");
    }

    #[test]
    fn dev_signer_pem_round_trip() {
        let signer = DevSigner::generate().unwrap().with_kid("dev");
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----")));
        let again = DevSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.public_key_pem(), signer.public_key_pem());
        assert_eq!(again.kid(), None);
        let token = signer.sign_claims(&claims()).unwrap();
        assert!(check(&token, &again.token_keys().unwrap()).is_ok());
        assert!(check(&token, &signer.token_keys().unwrap()).is_ok());
        assert!(check(
            &token,
            &TokenKeys::from_jwks(&signer.public_jwks()).unwrap()
        )
        .is_ok());
        assert!(!format!("{signer:?}").contains("PRIVATE"));
        assert!(DevSigner::from_pkcs8_pem("nope").is_err());
    }

    #[test]
    fn dev_signer_writes_pkcs8_v1_without_public_key() {
        use rsa::pkcs8::der::{pem, Decode as _};
        use rsa::pkcs8::{PrivateKeyInfo, Version};
        let signer = DevSigner::generate().unwrap();
        let written = signer.to_pkcs8_pem().unwrap();
        let (label, der) = pem::decode_vec(written.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        // Strict DER: trailing bytes (the v2 public key) would fail here too.
        let info = PrivateKeyInfo::from_der(&der).unwrap();
        assert_eq!(info.version(), Version::V1);
        assert!(info.public_key.is_none());
        assert_eq!(info.algorithm.oid, ed25519_dalek::pkcs8::ALGORITHM_OID);
        let again = DevSigner::from_pkcs8_pem(&written).unwrap();
        assert_eq!(again.public_key_pem(), signer.public_key_pem());
        let token = again.sign_claims(&claims()).unwrap();
        assert!(check(&token, &signer.token_keys().unwrap()).is_ok());
    }

    #[test]
    fn payload_must_be_an_object_even_with_one_element_per_claim() {
        // serde reads a plain struct from an array too, element by element.
        let e = ed();
        let good = e.signer.sign_claims(&claims()).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let array = json!([
            CUSTOMS,
            "officer-7",
            GATEWAY,
            NOW + 600,
            null,
            NOW,
            "subscribe",
            {}
        ]);
        let token = format!("{}.{}.{}", parts[0], b64(&array), parts[2]);
        let err = check(&token, &e.keys).unwrap_err();
        assert!(matches!(err, TokenError::Malformed { .. }), "{err}");
    }

    #[test]
    fn several_missing_claims_are_named_in_a_fixed_order() {
        let e = ed();
        let c = without(without(without(claims(), "sub"), "aud"), "exp");
        for _ in 0..8 {
            let token = e.signer.sign_claims(&c).unwrap();
            assert_eq!(
                check(&token, &e.keys),
                Err(TokenError::MissingClaim { claim: "exp" })
            );
        }
    }

    #[test]
    fn cert_thumbprint_matches_minted_binding() {
        let der = b"not really a certificate";
        let e = ed();
        let token = e
            .signer
            .mint(
                CUSTOMS,
                "o",
                GATEWAY,
                &[],
                Duration::from_secs(60),
                &crate::auth::identity::certificate_sha256(der),
                NOW,
            )
            .unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(der));
        assert_eq!(claims["cnf"]["x5t#S256"], json!(expected));
        assert!(claims.get("scope").is_none());
        assert!(now_unix() > NOW);
    }
}
