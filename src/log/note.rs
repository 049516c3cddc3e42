//! Signed notes (C2SP `signed-note`) and transparency-log checkpoints (C2SP
//! `tlog-checkpoint`) with Ed25519 keys.
//!
//! The audit log publishes its state as a *checkpoint*: the log's origin, its
//! tree size and its RFC 9162 root hash, signed by the log's key. Using the
//! C2SP formats — the ones produced by Go's `golang.org/x/mod/sumdb/note` and
//! consumed by witnesses and monitors in the transparency-log ecosystem —
//! means anyone can check the gateway's checkpoints with standard tools, and
//! the gateway can later gain witness cosignatures without a format change.
//!
//! Key strings follow the Go `note` package:
//!
//! - verifier key: `<name>+<8 hex key id>+<base64(0x01 ‖ 32-byte public key)>`
//! - signer key: `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ 32-byte seed)>`
//!
//! where the key id is the first four bytes, big-endian, of
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Signature type byte of Ed25519 note keys.
const ALG_ED25519: u8 = 0x01;
/// Start of every signature line: an em dash (U+2014) and a space.
pub(super) const SIG_PREFIX: &str = "\u{2014} ";
/// Prefix of a signer key string.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Most signature lines a note may carry (as in Go's `note.Open`); the
/// specification requires accepting at least 16.
const MAX_SIGNATURES: usize = 100;
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// An error from handling keys, signed notes or checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name is empty or contains a space, a plus sign or a control
    /// character.
    #[error("the key name {0:?} is not valid: it must be non-empty without spaces, '+' or control characters")]
    InvalidName(String),
    /// A verifier key string could not be parsed.
    #[error("the verifier key is malformed: {0}")]
    MalformedVerifierKey(&'static str),
    /// A signer key string could not be parsed.
    #[error("the signer key is malformed: {0}")]
    MalformedSignerKey(&'static str),
    /// A key uses a signature type other than Ed25519.
    #[error("the key uses signature type {0:#04x}, but only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm(u8),
    /// The bytes of a public key are not a valid Ed25519 point.
    #[error("the public key is not a valid Ed25519 key")]
    InvalidPublicKey,
    /// The key id in a key string does not match the key's name and bytes.
    #[error("the key id {found:08x} does not match the key, whose id is {expected:08x}")]
    KeyIdMismatch {
        /// The key id written in the key string.
        found: u32,
        /// The key id computed from the name and the public key.
        expected: u32,
    },
    /// The system random number generator failed while generating a key.
    #[error("the system random number generator failed: {0}")]
    Randomness(String),
    /// A text to sign is not acceptable as note text.
    #[error("the text cannot be signed: {0}")]
    InvalidText(&'static str),
    /// A signed note does not follow the note format.
    #[error("the note is malformed: {0}")]
    MalformedNote(&'static str),
    /// No signature line of the note is from the verifier's key.
    #[error("the note has no signature from key {name}+{key_id:08x}")]
    NoMatchingSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key id.
        key_id: u32,
    },
    /// The note's signature from the verifier's key is not valid.
    #[error("the note's signature from key {name}+{key_id:08x} is not valid")]
    InvalidSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key id.
        key_id: u32,
    },
    /// A checkpoint body does not follow the tlog-checkpoint format.
    #[error("the checkpoint is malformed: {0}")]
    MalformedCheckpoint(&'static str),
}

/// Returns the note key id of an Ed25519 public key under `name`: the first
/// four bytes, big-endian, of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public_key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    key_id_of_type(name, ALG_ED25519, public_key)
}

/// Returns the key id of a 32-byte public key of signature type `alg` under
/// `name`: the first four bytes, big-endian, of
/// `SHA-256(name ‖ "\n" ‖ alg ‖ public_key)`.
pub(super) fn key_id_of_type(name: &str, alg: u8, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([alg]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Returns whether `name` is a valid key name: non-empty, without Unicode
/// spaces, `+` or control characters.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// Fails with [`NoteError::InvalidName`] unless `name` is a valid key name.
fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidName(name.to_owned()))
    }
}

/// Returns whether `text` has an ASCII control character other than newline,
/// which signed notes must not contain.
fn has_forbidden_control(text: &str) -> bool {
    text.chars().any(|c| c < ' ' && c != '\n')
}

/// Parses the `<8 hex key id>` part of a key string.
fn parse_key_id(hex_id: &str) -> Option<u32> {
    if hex_id.len() != 8 || !hex_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex_id, 16).ok()
}

/// Decodes `base64(alg ‖ 32 bytes)` as used by both key strings (`alg` is
/// 0x01 for note keys).
fn decode_key_material(b64: &str, alg: u8) -> Result<[u8; 32], KeyMaterialError> {
    let bytes = BASE64.decode(b64).map_err(|_| KeyMaterialError::Base64)?;
    let (&found, key) = bytes.split_first().ok_or(KeyMaterialError::Empty)?;
    if found != alg {
        return Err(KeyMaterialError::Algorithm(found));
    }
    key.try_into().map_err(|_| KeyMaterialError::Length)
}

/// Why the key material of a key string was rejected.
enum KeyMaterialError {
    Base64,
    Empty,
    Algorithm(u8),
    Length,
}

impl KeyMaterialError {
    /// Returns the error to report, `malformed` building the message for the
    /// key string's kind.
    fn into_note_error(self, malformed: fn(&'static str) -> NoteError) -> NoteError {
        match self {
            Self::Base64 => malformed("the key material is not valid padded standard base64"),
            Self::Empty => malformed("the key material is empty"),
            Self::Algorithm(alg) => NoteError::UnsupportedAlgorithm(alg),
            Self::Length => malformed("an Ed25519 key must be 32 bytes after the type byte"),
        }
    }
}

/// Encodes `base64(alg ‖ key)` (`alg` is 0x01 for note keys).
fn encode_key_material(key: &[u8; 32], alg: u8) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(alg);
    bytes.extend_from_slice(key);
    BASE64.encode(bytes)
}

/// An Ed25519 signing key of one signed-note signature type (`alg`) with its name and key
/// id: what note signer keys (0x01, [`NoteSigner`]) and cosigner keys (0x04,
/// [`super::cosign::CosignerKey`]) have in common.
#[derive(Clone)]
pub(super) struct TypedKey {
    pub(super) name: String,
    pub(super) key_id: u32,
    pub(super) key: SigningKey,
}

/// Why a key string was refused: as the note format says, or for its signature type (each
/// kind of key reports that its own way).
pub(super) enum KeyStringError {
    Note(NoteError),
    Algorithm(u8),
}

impl From<NoteError> for KeyStringError {
    fn from(e: NoteError) -> Self {
        KeyStringError::Note(e)
    }
}

/// Splits `<name>+<8 hex key id>+<base64>` into its name, key id and key material.
fn split_key_string(
    key: &str,
    malformed: fn(&'static str) -> NoteError,
) -> Result<(&str, u32, &str), NoteError> {
    // The base64 part may itself contain '+', so split only twice.
    let mut parts = key.splitn(3, '+');
    let (Some(name), Some(hex_id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("it does not have a name, a key id and a key"));
    };
    check_name(name)?;
    let found = parse_key_id(hex_id).ok_or(malformed("the key id is not 8 hex digits"))?;
    Ok((name, found, b64))
}

/// Decodes the key material of a key string of type `alg`.
fn key_material(
    b64: &str,
    alg: u8,
    malformed: fn(&'static str) -> NoteError,
) -> Result<[u8; 32], KeyStringError> {
    decode_key_material(b64, alg).map_err(|e| match e {
        KeyMaterialError::Algorithm(found) => KeyStringError::Algorithm(found),
        other => KeyStringError::Note(other.into_note_error(malformed)),
    })
}

impl TypedKey {
    /// A new random key named `name` from the operating system's random number generator.
    pub(super) fn generate(name: &str, alg: u8) -> Result<Self, NoteError> {
        use rand_core::RngCore as _;
        let mut seed = [0u8; 32];
        rand_core::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| NoteError::Randomness(e.to_string()))?;
        Self::from_seed(name, &seed, alg)
    }

    /// The key named `name` of a 32-byte Ed25519 seed.
    pub(super) fn from_seed(name: &str, seed: &[u8; 32], alg: u8) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id_of_type(name, alg, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<8 hex key id>+<base64(alg ‖ seed)>`, checking that the
    /// key id matches the name and key.
    pub(super) fn from_private_key(skey: &str, alg: u8) -> Result<Self, KeyStringError> {
        let malformed = NoteError::MalformedSignerKey;
        let rest = skey
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(malformed("it does not start with PRIVATE+KEY+"))?;
        let (name, found, b64) = split_key_string(rest, malformed)?;
        let seed = key_material(b64, alg, malformed)?;
        let key = Self::from_seed(name, &seed, alg)?;
        if key.key_id != found {
            return Err(NoteError::KeyIdMismatch {
                found,
                expected: key.key_id,
            }
            .into());
        }
        Ok(key)
    }

    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(alg ‖ seed)>`.
    pub(super) fn private_key(&self, alg: u8) -> String {
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes(), alg)
        )
    }

    /// Its verifier.
    pub(super) fn verifier(&self) -> TypedVerifier {
        TypedVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// `Debug` without the private key, as `kind`.
    pub(super) fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(kind)
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// An Ed25519 verifier key of one signed-note signature type with its name and key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TypedVerifier {
    pub(super) name: String,
    pub(super) key_id: u32,
    pub(super) key: VerifyingKey,
}

impl TypedVerifier {
    /// Parses `<name>+<8 hex key id>+<base64(alg ‖ public key)>`, checking that the key id
    /// matches the name and key.
    pub(super) fn from_verifier_key(vkey: &str, alg: u8) -> Result<Self, KeyStringError> {
        let malformed = NoteError::MalformedVerifierKey;
        let (name, found, b64) = split_key_string(vkey, malformed)?;
        let public_key = key_material(b64, alg, malformed)?;
        let verifier = Self::from_public_key(name, &public_key, alg)?;
        if verifier.key_id != found {
            return Err(NoteError::KeyIdMismatch {
                found,
                expected: verifier.key_id,
            }
            .into());
        }
        Ok(verifier)
    }

    /// The verifier named `name` of a 32-byte Ed25519 public key.
    pub(super) fn from_public_key(
        name: &str,
        public_key: &[u8; 32],
        alg: u8,
    ) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id_of_type(name, alg, public_key),
            key,
        })
    }

    /// `<name>+<8 hex key id>+<base64(alg ‖ public key)>`.
    pub(super) fn verifier_key(&self, alg: u8) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes(), alg)
        )
    }

    /// The text of a signed note and the bytes after the key id of the first signature line
    /// from this key, if any. Lines of other keys are ignored; every line must be well formed.
    pub(super) fn find<'a>(&self, note: &'a str) -> Result<(&'a str, Option<Vec<u8>>), NoteError> {
        let (text, signatures) = split_note(note)?;
        let mut found = None;
        for (count, line) in signatures.split_terminator('\n').enumerate() {
            if count == MAX_SIGNATURES {
                return Err(NoteError::MalformedNote("the note has too many signatures"));
            }
            let (name, key_id, blob) = parse_signature_line(line)?;
            if found.is_none() && name == self.name && key_id == self.key_id {
                found = Some(blob);
            }
        }
        Ok((text, found))
    }
}

/// A key string error of a note key: its signature type is not Ed25519 (0x01).
fn note_key_error(e: KeyStringError) -> NoteError {
    match e {
        KeyStringError::Note(e) => e,
        KeyStringError::Algorithm(alg) => NoteError::UnsupportedAlgorithm(alg),
    }
}

/// An Ed25519 note signing key with its name: signs note texts and
/// checkpoints.
///
/// Its `Debug` output leaves out the private key.
#[derive(Clone)]
pub struct NoteSigner(TypedKey);

impl NoteSigner {
    /// Generates a new random key named `name` from the operating system's
    /// random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        TypedKey::generate(name, ALG_ED25519).map(Self)
    }

    /// Builds the key named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        TypedKey::from_seed(name, seed, ALG_ED25519).map(Self)
    }

    /// Parses a signer key string
    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ seed)>`, checking that
    /// the key id matches the name and key.
    pub fn from_private_key(skey: &str) -> Result<Self, NoteError> {
        TypedKey::from_private_key(skey, ALG_ED25519)
            .map(Self)
            .map_err(note_key_error)
    }

    /// Returns the signer key string
    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ seed)>`. Keep it
    /// secret.
    pub fn private_key(&self) -> String {
        self.0.private_key(ALG_ED25519)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Returns the key id.
    pub fn key_id(&self) -> u32 {
        self.0.key_id
    }

    /// Returns the verifier key string
    /// `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>` to publish.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// Returns the verifier of this key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier(self.0.verifier())
    }

    /// Signs `text` and returns the signed note: the text, a blank line and
    /// one signature line.
    ///
    /// The text must be non-empty, end in a newline and contain no ASCII
    /// control character other than newline.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() {
            return Err(NoteError::InvalidText("the text is empty"));
        }
        if !text.ends_with('\n') {
            return Err(NoteError::InvalidText("the text does not end in a newline"));
        }
        if has_forbidden_control(text) {
            return Err(NoteError::InvalidText(
                "the text contains a control character other than newline",
            ));
        }
        let signature = self.0.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + SIGNATURE_LEN);
        blob.extend_from_slice(&self.0.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.0.name,
            BASE64.encode(blob)
        ))
    }

    /// Checks `checkpoint` and returns it signed as a note.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, NoteError> {
        checkpoint.validate()?;
        self.sign(&checkpoint.to_text())
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("NoteSigner", f)
    }
}

impl FromStr for NoteSigner {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_private_key(s)
    }
}

/// An Ed25519 note verifier key with its name: checks signed notes and
/// checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier(TypedVerifier);

impl NoteVerifier {
    /// Parses a verifier key string
    /// `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`, checking that the
    /// key id matches the name and key.
    pub fn from_verifier_key(vkey: &str) -> Result<Self, NoteError> {
        TypedVerifier::from_verifier_key(vkey, ALG_ED25519)
            .map(Self)
            .map_err(note_key_error)
    }

    /// Builds the verifier named `name` for a 32-byte Ed25519 public key.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        TypedVerifier::from_public_key(name, public_key, ALG_ED25519).map(Self)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Returns the key id.
    pub fn key_id(&self) -> u32 {
        self.0.key_id
    }

    /// Returns the 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.key.to_bytes()
    }

    /// Returns the verifier key string
    /// `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        self.to_string()
    }

    /// Verifies a signed note and returns its text (ending in a newline).
    ///
    /// Signature lines from other keys (another name or key id) are ignored,
    /// as the note format requires; a repeated signature line from this key is
    /// checked once. Fails if the note is malformed, has no signature from
    /// this key, or its signature from this key does not verify.
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, found) = self.0.find(note)?;
        let Some(signature) = found else {
            return Err(NoteError::NoMatchingSignature {
                name: self.0.name.clone(),
                key_id: self.0.key_id,
            });
        };
        let valid = Signature::from_slice(&signature)
            .is_ok_and(|sig| self.0.key.verify_strict(text.as_bytes(), &sig).is_ok());
        if !valid {
            return Err(NoteError::InvalidSignature {
                name: self.0.name.clone(),
                key_id: self.0.key_id,
            });
        }
        Ok(text)
    }

    /// Verifies a signed checkpoint note and parses its text.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(self.verify(note)?)
    }
}

impl fmt::Display for NoteVerifier {
    /// Writes the verifier key string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.verifier_key(ALG_ED25519))
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_verifier_key(s)
    }
}

/// Splits a signed note into its text (with its final newline) and its
/// signature block (each line ending in a newline).
pub(super) fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if has_forbidden_control(note) {
        return Err(NoteError::MalformedNote(
            "the note contains a control character other than newline",
        ));
    }
    // The text may contain blank lines; the signatures start after the last.
    let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "the note has no blank line before its signatures",
    ))?;
    let text = &note[..=split];
    let signatures = &note[split + 2..];
    if signatures.is_empty() {
        return Err(NoteError::MalformedNote("the note has no signature lines"));
    }
    if !signatures.ends_with('\n') {
        return Err(NoteError::MalformedNote(
            "the note does not end in a newline",
        ));
    }
    Ok((text, signatures))
}

/// Parses `— <name> <base64(key id ‖ signature)>` into its name, key id and
/// signature bytes.
pub(super) fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = NoteError::MalformedNote;
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(malformed(
        "a signature line does not start with an em dash and a space",
    ))?;
    let (name, b64) = rest.split_once(' ').ok_or(malformed(
        "a signature line has no signature after the key name",
    ))?;
    if !is_valid_name(name) {
        return Err(malformed("a signature line has an invalid key name"));
    }
    let blob = BASE64
        .decode(b64)
        .map_err(|_| malformed("a signature is not valid padded standard base64"))?;
    if blob.len() < 5 {
        return Err(malformed(
            "a signature is too short to hold a key id and a signature",
        ));
    }
    let (id, signature) = blob.split_at(4);
    let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    Ok((name, key_id, signature.to_vec()))
}

/// A transparency-log checkpoint (C2SP `tlog-checkpoint`): the signed-note
/// text committing to the log's tree at a size.
///
/// Its text is `<origin>\n<size>\n<base64 root>\n` followed by optional
/// non-empty extension lines, each ending in a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log`: non-empty, one line.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 9162 root hash of the tree at `size`.
    pub root: Hash,
    /// Extra lines after the root, each non-empty and without a newline.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Returns a checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Returns the checkpoint text. It parses back to `self` when
    /// [`Checkpoint::validate`] accepts `self`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Checks that the origin and extension lines are non-empty single lines
    /// without control characters.
    pub fn validate(&self) -> Result<(), NoteError> {
        let malformed = NoteError::MalformedCheckpoint;
        if self.origin.is_empty() {
            return Err(malformed("the origin is empty"));
        }
        if self.origin.chars().any(char::is_control) {
            return Err(malformed("the origin contains a control character"));
        }
        for line in &self.extensions {
            if line.is_empty() {
                return Err(malformed("an extension line is empty"));
            }
            if line.chars().any(char::is_control) {
                return Err(malformed("an extension line contains a control character"));
            }
        }
        Ok(())
    }

    /// Parses a checkpoint text strictly: a non-empty origin, a decimal size
    /// without leading zeros (except `0`), the root as padded standard base64
    /// of exactly 32 bytes, then non-empty extension lines; every line ends in
    /// a newline.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = NoteError::MalformedCheckpoint;
        let body = text
            .strip_suffix('\n')
            .ok_or(malformed("the text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed(
                "the text does not have an origin, a tree size and a root hash line",
            ));
        };
        let size = parse_size(size).ok_or(malformed(
            "the tree size is not a decimal number without leading zeros",
        ))?;
        let root: Hash = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(malformed(
                "the root hash is not 32 bytes in padded standard base64",
            ))?;
        let checkpoint = Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: lines.map(str::to_owned).collect(),
        };
        checkpoint.validate()?;
        Ok(checkpoint)
    }
}

/// Parses a tree size: ASCII digits, no leading zero unless it is `0`, no
/// overflow.
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_note() -> String {
        format!("{GO_TEXT}\n{GO_SIG_LINE}")
    }

    #[test]
    fn go_known_answer_keys() {
        let signer = NoteSigner::from_private_key(GO_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(signer.private_key(), GO_SKEY);

        let verifier = NoteVerifier::from_verifier_key(GO_VKEY).unwrap();
        assert_eq!(verifier.name(), "PeterNeumann");
        assert_eq!(verifier.key_id(), 0xc74f20a3);
        assert_eq!(verifier.to_string(), GO_VKEY);
        assert_eq!(verifier, signer.verifier());
        assert_eq!(key_id("PeterNeumann", &verifier.public_key()), 0xc74f20a3);
        assert_eq!(GO_VKEY.parse::<NoteVerifier>().unwrap(), verifier);
        assert_eq!(GO_SKEY.parse::<NoteSigner>().unwrap().key_id(), 0xc74f20a3);
    }

    #[test]
    fn go_known_answer_signature() {
        let signer = NoteSigner::from_private_key(GO_SKEY).unwrap();
        assert_eq!(signer.sign(GO_TEXT).unwrap(), go_note());
        let verifier = NoteVerifier::from_verifier_key(GO_VKEY).unwrap();
        assert_eq!(verifier.verify(&go_note()).unwrap(), GO_TEXT);
    }

    #[test]
    fn tampered_notes_fail() {
        let verifier = NoteVerifier::from_verifier_key(GO_VKEY).unwrap();
        let note = go_note();

        let tampered = note.replacen("cryptography", "cryptographY", 1);
        assert_eq!(
            verifier.verify(&tampered),
            Err(NoteError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );

        // A different key under the same name: its key id differs, so the
        // signature is ignored and nothing verifies.
        let other = NoteSigner::from_seed("PeterNeumann", &[7; 32]).unwrap();
        assert!(matches!(
            other.verifier().verify(&note),
            Err(NoteError::NoMatchingSignature { .. })
        ));

        // The right name and key id but another key's signature bytes.
        let forged = other.sign(GO_TEXT).unwrap();
        let forged_b64 = forged.rsplit(' ').next().unwrap().trim_end();
        let mut blob = BASE64.decode(forged_b64).unwrap();
        blob[..4].copy_from_slice(&0xc74f20a3u32.to_be_bytes());
        let forged_note = format!(
            "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
            BASE64.encode(&blob)
        );
        assert!(matches!(
            verifier.verify(&forged_note),
            Err(NoteError::InvalidSignature { .. })
        ));

        // The right signature bytes under a wrong key id: ignored.
        let mut blob = BASE64
            .decode(GO_SIG_LINE.rsplit(' ').next().unwrap().trim_end())
            .unwrap();
        blob[3] ^= 1;
        let wrong_id = format!(
            "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
            BASE64.encode(&blob)
        );
        assert!(matches!(
            verifier.verify(&wrong_id),
            Err(NoteError::NoMatchingSignature { .. })
        ));

        // The right signature under another name: ignored.
        let renamed = note.replace("\u{2014} PeterNeumann ", "\u{2014} PeterNeumann2 ");
        assert!(matches!(
            verifier.verify(&renamed),
            Err(NoteError::NoMatchingSignature { .. })
        ));

        // A flipped signature bit.
        let mut blob = BASE64
            .decode(GO_SIG_LINE.rsplit(' ').next().unwrap().trim_end())
            .unwrap();
        blob[40] ^= 0x10;
        let flipped = format!(
            "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
            BASE64.encode(&blob)
        );
        assert!(matches!(
            verifier.verify(&flipped),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn unknown_signatures_are_ignored() {
        let verifier = NoteVerifier::from_verifier_key(GO_VKEY).unwrap();
        let witness = NoteSigner::from_seed("witness.example/w1", &[3; 32]).unwrap();
        let witness_line = witness.sign(GO_TEXT).unwrap();
        let witness_line = witness_line
            .strip_prefix(GO_TEXT)
            .unwrap()
            .trim_start_matches('\n');
        // Unknown signature before and after the known one.
        let note = format!("{GO_TEXT}\n{witness_line}{GO_SIG_LINE}{witness_line}");
        assert_eq!(verifier.verify(&note).unwrap(), GO_TEXT);
        assert_eq!(witness.verifier().verify(&note).unwrap(), GO_TEXT);
        // A repeated known signature is fine.
        let note = format!("{GO_TEXT}\n{GO_SIG_LINE}{GO_SIG_LINE}");
        assert_eq!(verifier.verify(&note).unwrap(), GO_TEXT);
        // Only unknown signatures: rejected.
        let note = format!("{GO_TEXT}\n{witness_line}");
        assert_eq!(
            verifier.verify(&note),
            Err(NoteError::NoMatchingSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let verifier = NoteVerifier::from_verifier_key(GO_VKEY).unwrap();
        let sig = GO_SIG_LINE.trim_end_matches('\n');
        let cases = [
            format!("{GO_TEXT}{GO_SIG_LINE}"),                  // no blank line
            format!("{GO_TEXT}\n{sig}"),                        // no final newline
            format!("{GO_TEXT}\n"),                             // no signatures
            format!("{GO_TEXT}\n- PeterNeumann x\n"),           // not an em dash
            format!("{GO_TEXT}\n\u{2014} PeterNeumann\n"),      // no signature
            format!("{GO_TEXT}\n\u{2014} PeterNeumann !!!!\n"), // bad base64
            format!("{GO_TEXT}\n\u{2014} PeterNeumann AAAA\n"), // too short
            format!("{GO_TEXT}\n\u{2014}  {}\n", &sig[17..]),   // empty name
            format!("bad\tchar\n\n{GO_SIG_LINE}"),              // control character
            GO_SIG_LINE.to_string(),
            String::new(),
        ];
        for case in &cases {
            assert!(
                matches!(verifier.verify(case), Err(NoteError::MalformedNote(_))),
                "accepted {case:?}: {:?}",
                verifier.verify(case)
            );
        }
        // A blank line among the signatures makes the lines before it part
        // of the text, so the signature no longer matches.
        let moved = format!("{GO_TEXT}\n{GO_SIG_LINE}\n{GO_SIG_LINE}");
        assert!(matches!(
            verifier.verify(&moved),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Too many signatures.
        let many = format!("{GO_TEXT}\n{}", GO_SIG_LINE.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            verifier.verify(&many),
            Err(NoteError::MalformedNote("the note has too many signatures"))
        );
        let enough = format!("{GO_TEXT}\n{}", GO_SIG_LINE.repeat(MAX_SIGNATURES));
        assert!(verifier.verify(&enough).is_ok());
    }

    #[test]
    fn text_with_blank_lines_round_trips() {
        let signer = NoteSigner::from_seed("example.com/log", &[1; 32]).unwrap();
        let verifier = signer.verifier();
        for text in ["a\n\nb\n", "a\n\n", "\n", "line\n"] {
            let note = signer.sign(text).unwrap();
            assert_eq!(verifier.verify(&note).unwrap(), text, "{text:?}");
        }
        assert_eq!(
            signer.sign(""),
            Err(NoteError::InvalidText("the text is empty"))
        );
        assert!(matches!(
            signer.sign("no newline"),
            Err(NoteError::InvalidText(_))
        ));
        assert!(matches!(
            signer.sign("cr\r\n"),
            Err(NoteError::InvalidText(_))
        ));
    }

    #[test]
    fn generated_keys_round_trip() {
        let signer = NoteSigner::generate("example.com/audit").unwrap();
        let again = NoteSigner::from_private_key(&signer.private_key()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = NoteVerifier::from_verifier_key(&signer.verifier_key()).unwrap();
        assert_eq!(verifier.name(), "example.com/audit");
        assert_eq!(verifier.key_id(), signer.key_id());
        let note = signer.sign("hello\n").unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), "hello\n");
        assert_ne!(
            NoteSigner::generate("example.com/audit")
                .unwrap()
                .verifier(),
            verifier
        );
        // Debug does not show the private key.
        assert_eq!(
            format!("{signer:?}"),
            format!(
                "NoteSigner {{ name: \"example.com/audit\", key_id: {:08x}, .. }}",
                signer.key_id()
            )
        );
    }

    #[test]
    fn bad_key_strings_are_rejected() {
        let vkey_material = GO_VKEY.rsplit_once("c74f20a3+").unwrap().1;
        for (vkey, what) in [
            (
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                "id",
            ),
            (
                "Peter+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                "name",
            ),
            (
                "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                "short id",
            ),
            ("PeterNeumann+c74f20a3", "no key"),
            (
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
                "base64",
            ),
            (
                "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                "empty name",
            ),
            (
                "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                "space",
            ),
        ] {
            assert!(
                NoteVerifier::from_verifier_key(vkey).is_err(),
                "accepted verifier key with bad {what}"
            );
        }
        assert_eq!(
            NoteVerifier::from_verifier_key(&format!(
                "PeterNeumann+c74f20a3+{}",
                BASE64.encode([2u8; 33])
            )),
            Err(NoteError::UnsupportedAlgorithm(2))
        );
        assert!(matches!(
            NoteVerifier::from_verifier_key(&format!(
                "PeterNeumann+c74f20a3+{}",
                BASE64.encode([1u8; 32])
            )),
            Err(NoteError::MalformedVerifierKey(_))
        ));
        assert_eq!(
            NoteVerifier::from_verifier_key(&format!("PeterNeumann+c74f20a4+{vkey_material}")),
            Err(NoteError::KeyIdMismatch {
                found: 0xc74f20a4,
                expected: 0xc74f20a3
            })
        );
        for skey in [
            "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+Peter+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "PRIVATE+KEY+PeterNeumann+c74f20a3",
            GO_VKEY,
        ] {
            assert!(
                NoteSigner::from_private_key(skey).is_err(),
                "accepted {skey}"
            );
        }
        assert!(matches!(
            NoteSigner::from_seed("bad name", &[0; 32]),
            Err(NoteError::InvalidName(_))
        ));
        assert!(matches!(
            NoteSigner::from_seed("a+b", &[0; 32]),
            Err(NoteError::InvalidName(_))
        ));
    }

    #[test]
    fn checkpoint_round_trip_and_signing() {
        let root: Hash =
            hex::decode("0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62")
                .unwrap()
                .try_into()
                .unwrap();
        let checkpoint = Checkpoint::new("example.com/behind-the-sofa", 20852163, root);
        // The example body of the tlog-checkpoint specification.
        assert_eq!(
            checkpoint.to_text(),
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert_eq!(
            Checkpoint::parse(&checkpoint.to_text()).unwrap(),
            checkpoint
        );

        let mut with_ext = checkpoint.clone();
        with_ext.extensions = vec!["ext one".into(), "— two".into()];
        assert_eq!(Checkpoint::parse(&with_ext.to_text()).unwrap(), with_ext);

        let signer = NoteSigner::from_seed("example.com/behind-the-sofa", &[9; 32]).unwrap();
        let note = signer.sign_checkpoint(&with_ext).unwrap();
        assert_eq!(
            signer.verifier().verify_checkpoint(&note).unwrap(),
            with_ext
        );

        let empty = Checkpoint::new("o", 0, super::super::merkle::empty_root());
        assert_eq!(Checkpoint::parse(&empty.to_text()).unwrap(), empty);
        let max = Checkpoint::new("o", u64::MAX, root);
        assert_eq!(Checkpoint::parse(&max.to_text()).unwrap(), max);

        let mut bad = checkpoint.clone();
        bad.origin = String::new();
        assert!(signer.sign_checkpoint(&bad).is_err());
        bad.origin = "two\nlines".into();
        assert!(signer.sign_checkpoint(&bad).is_err());
        let mut bad = checkpoint;
        bad.extensions = vec![String::new()];
        assert!(signer.sign_checkpoint(&bad).is_err());
    }

    #[test]
    fn checkpoint_parse_is_strict() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let ok = format!("o\n5\n{root}\n");
        assert!(Checkpoint::parse(&ok).is_ok());
        let cases = [
            format!("o\n5\n{root}"),                      // no final newline
            format!("\n5\n{root}\n"),                     // empty origin
            format!("o\n05\n{root}\n"),                   // leading zero
            format!("o\n00\n{root}\n"),                   // leading zero
            format!("o\n+5\n{root}\n"),                   // sign
            format!("o\n-1\n{root}\n"),                   // negative
            format!("o\n\n{root}\n"),                     // empty size
            format!("o\n 5\n{root}\n"),                   // space
            format!("o\n18446744073709551616\n{root}\n"), // overflow
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_string(), // no padding
            "o\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_string(), // url alphabet
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_string(), // trailing bits
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n".to_string(), // 30 bytes
            "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2IA\n".to_string(), // 33 bytes
            format!("o\n5\n{root}\n\n"),                  // empty extension line
            format!("o\n5\n{root}\next\n\nmore\n"),       // empty extension line
            "o\n5\n".to_string(),                         // no root
            "o\n".to_string(),
            String::new(),
        ];
        for case in &cases {
            assert!(
                matches!(
                    Checkpoint::parse(case),
                    Err(NoteError::MalformedCheckpoint(_))
                ),
                "accepted {case:?}"
            );
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
    }

    #[test]
    fn error_messages_are_sentences() {
        let err = NoteError::NoMatchingSignature {
            name: "log".into(),
            key_id: 0xab,
        };
        assert_eq!(
            err.to_string(),
            "the note has no signature from key log+000000ab"
        );
        assert_eq!(
            NoteError::UnsupportedAlgorithm(2).to_string(),
            "the key uses signature type 0x02, but only Ed25519 (0x01) is supported"
        );
    }
}
