//! Witness cosignatures of checkpoints (C2SP `tlog-cosignature`, Ed25519
//! type `cosignature/v1`) and the request body of a witness's
//! `add-checkpoint` call (C2SP `tlog-witness`).
//!
//! A *cosignature* is a signed-note signature line
//! `— <name> base64(key id ‖ timestamp ‖ signature)` that a witness adds to a
//! log's checkpoint once it has checked that the checkpoint is consistent
//! with every earlier one it saw from that log. Its Ed25519 signature covers
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <the checkpoint's note text, final newline included>
//! ```
//!
//! where the timestamp is the POSIX time of signing (at most 2^63 − 1), also
//! carried as 8 big-endian bytes before the signature. The key id is that of
//! a note key ([`super::note`]) with signature type 0x04 instead of 0x01:
//! the first four bytes, big-endian, of
//! `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)`, so a cosignature is never
//! mistaken for a plain note signature by the same key.
//!
//! Key strings have the shapes of the note keys, with type byte 0x04:
//!
//! - verifier key: `<name>+<8 hex key id>+<base64(0x04 ‖ 32-byte public key)>`
//! - signer key: `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x04 ‖ 32-byte seed)>`
//!
//! An `add-checkpoint` request body ([`AddCheckpoint`]) is an `old <size>`
//! line, up to 63 consistency-proof lines (one base64 hash each), an empty
//! line and the signed checkpoint note; the witness answers with one or more
//! cosignature lines, which a client may append to the checkpoint note and
//! check with [`CosignatureVerifier::verify`].

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};

use super::merkle::Hash;
use super::note::{
    key_id_of_type, parse_size, split_note, Checkpoint, KeyStringError, NoteError, TypedKey,
    TypedVerifier, SIG_PREFIX,
};

/// Signature type byte of Ed25519 `cosignature/v1` keys.
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Header line of the signed message, for domain separation.
const HEADER: &str = "cosignature/v1";
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;
/// Length of the big-endian timestamp before the signature.
const TIMESTAMP_LEN: usize = 8;

/// Largest timestamp a cosignature may carry: 2^63 − 1.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// Most consistency-proof lines an `add-checkpoint` request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` request body accepted, in bytes (64 KiB).
pub const MAX_ADD_CHECKPOINT_BODY: usize = 64 * 1024;

/// An error from handling cosigner keys, cosignatures or `add-checkpoint`
/// request bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    /// A key name, a key string, a signed note or a checkpoint is not
    /// acceptable, as the note format says.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// A key string's material has a signature type other than 0x04.
    #[error(
        "the key uses signature type {0:#04x}, but a cosigner key must be an Ed25519 \
         cosignature/v1 key (type 0x04)"
    )]
    UnsupportedKeyType(u8),
    /// A timestamp is larger than 2^63 − 1.
    #[error("the cosignature timestamp {0} is larger than 2^63 - 1")]
    TimestampOutOfRange(u64),
    /// The signature line from the verifier's key is not a timestamped
    /// Ed25519 signature.
    #[error("the cosignature is malformed: {0}")]
    MalformedCosignature(&'static str),
    /// No signature line of the note is from the verifier's key.
    #[error("the note has no cosignature from key {name}+{key_id:08x}")]
    NoMatchingCosignature {
        /// The cosigner's key name.
        name: String,
        /// The cosigner's key id.
        key_id: u32,
    },
    /// The note's cosignature from the verifier's key is not valid.
    #[error("the note's cosignature from key {name}+{key_id:08x} is not valid")]
    InvalidCosignature {
        /// The cosigner's key name.
        name: String,
        /// The cosigner's key id.
        key_id: u32,
    },
    /// An `add-checkpoint` request body is larger than
    /// [`MAX_ADD_CHECKPOINT_BODY`].
    #[error("the add-checkpoint request body has {size} bytes, more than the {max} allowed")]
    RequestTooLarge {
        /// The body's length in bytes.
        size: usize,
        /// The largest length accepted.
        max: usize,
    },
    /// An `add-checkpoint` request body does not follow the format.
    #[error("the add-checkpoint request body is malformed: {0}")]
    MalformedRequest(&'static str),
}

/// Returns the `cosignature/v1` key id of an Ed25519 public key under
/// `name`: the first four bytes, big-endian, of
/// `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public_key)`.
pub fn cosigner_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    key_id_of_type(name, ALG_COSIGNATURE_V1, public_key)
}

/// Returns the message a `cosignature/v1` signature covers:
/// `cosignature/v1\ntime <timestamp>\n` followed by the note text.
fn signed_message(timestamp: u64, text: &str) -> String {
    format!("{HEADER}\ntime {timestamp}\n{text}")
}

/// A key string error of a cosigner key: its signature type is not 0x04.
fn cosign_key_error(e: KeyStringError) -> CosignError {
    match e {
        KeyStringError::Note(e) => e.into(),
        KeyStringError::Algorithm(alg) => CosignError::UnsupportedKeyType(alg),
    }
}

/// Splits the bytes after a cosignature's key id into its timestamp and
/// Ed25519 signature.
fn parse_timestamped_signature(blob: &[u8]) -> Result<(u64, Signature), CosignError> {
    if blob.len() != TIMESTAMP_LEN + SIGNATURE_LEN {
        return Err(CosignError::MalformedCosignature(
            "it is not an 8-byte timestamp and a 64-byte Ed25519 signature after the key id",
        ));
    }
    let (time, signature) = blob.split_at(TIMESTAMP_LEN);
    let mut time_bytes = [0u8; TIMESTAMP_LEN];
    time_bytes.copy_from_slice(time);
    let timestamp = u64::from_be_bytes(time_bytes);
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignError::TimestampOutOfRange(timestamp));
    }
    let signature = Signature::from_slice(signature).map_err(|_| {
        CosignError::MalformedCosignature("the signature is not a 64-byte Ed25519 signature")
    })?;
    Ok((timestamp, signature))
}

/// A witness's Ed25519 `cosignature/v1` signing key with its name: cosigns
/// checkpoints.
///
/// Its `Debug` output leaves out the private key.
#[derive(Clone)]
pub struct CosignerKey(TypedKey);

impl CosignerKey {
    /// Generates a new random key named `name` from the operating system's
    /// random number generator.
    pub fn generate(name: &str) -> Result<Self, CosignError> {
        Ok(Self(TypedKey::generate(name, ALG_COSIGNATURE_V1)?))
    }

    /// Builds the key named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CosignError> {
        Ok(Self(TypedKey::from_seed(name, seed, ALG_COSIGNATURE_V1)?))
    }

    /// Parses a signer key string
    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x04 ‖ seed)>`, checking that
    /// the key id matches the name and key. A note signer key (type 0x01) is
    /// refused with [`CosignError::UnsupportedKeyType`].
    pub fn from_private_key(skey: &str) -> Result<Self, CosignError> {
        TypedKey::from_private_key(skey, ALG_COSIGNATURE_V1)
            .map(Self)
            .map_err(cosign_key_error)
    }

    /// Returns the signer key string
    /// `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x04 ‖ seed)>`. Keep it
    /// secret.
    pub fn private_key(&self) -> String {
        self.0.private_key(ALG_COSIGNATURE_V1)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Returns the `cosignature/v1` key id.
    pub fn key_id(&self) -> u32 {
        self.0.key_id
    }

    /// Returns the verifier of this key.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier(self.0.verifier())
    }

    /// Returns the verifier key string
    /// `<name>+<8 hex key id>+<base64(0x04 ‖ public key)>` to publish.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// Cosigns a checkpoint at `timestamp` (POSIX seconds) and returns the
    /// cosignature line, ending in a newline, to append to the checkpoint's
    /// signed note or to send as an `add-checkpoint` response.
    ///
    /// `checkpoint_text` is the checkpoint's note text without signatures
    /// (as [`Checkpoint::to_text`] writes it, final newline included); it
    /// must parse as a checkpoint. The caller is the one to check that the
    /// checkpoint is consistent with what it cosigned before.
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> Result<String, CosignError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignError::TimestampOutOfRange(timestamp));
        }
        Checkpoint::parse(checkpoint_text)?;
        let signature = self
            .0
            .key
            .sign(signed_message(timestamp, checkpoint_text).as_bytes());
        let mut blob = Vec::with_capacity(4 + TIMESTAMP_LEN + SIGNATURE_LEN);
        blob.extend_from_slice(&self.0.key_id.to_be_bytes());
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.0.name,
            BASE64.encode(blob)
        ))
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("CosignerKey", f)
    }
}

impl FromStr for CosignerKey {
    type Err = CosignError;

    fn from_str(s: &str) -> Result<Self, CosignError> {
        Self::from_private_key(s)
    }
}

/// A witness's Ed25519 `cosignature/v1` verifier key with its name: checks
/// its cosignatures on checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier(TypedVerifier);

impl CosignatureVerifier {
    /// Parses a verifier key string
    /// `<name>+<8 hex key id>+<base64(0x04 ‖ public key)>`, checking that the
    /// key id matches the name and key. A note verifier key (type 0x01) is
    /// refused with [`CosignError::UnsupportedKeyType`].
    pub fn from_verifier_key(vkey: &str) -> Result<Self, CosignError> {
        TypedVerifier::from_verifier_key(vkey, ALG_COSIGNATURE_V1)
            .map(Self)
            .map_err(cosign_key_error)
    }

    /// Builds the verifier named `name` for a 32-byte Ed25519 public key.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, CosignError> {
        Ok(Self(TypedVerifier::from_public_key(
            name,
            public_key,
            ALG_COSIGNATURE_V1,
        )?))
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Returns the `cosignature/v1` key id.
    pub fn key_id(&self) -> u32 {
        self.0.key_id
    }

    /// Returns the 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.key.to_bytes()
    }

    /// Returns the verifier key string
    /// `<name>+<8 hex key id>+<base64(0x04 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        self.to_string()
    }

    /// Verifies this cosigner's cosignature on a signed note (the checkpoint
    /// text, a blank line, signature lines) and returns its timestamp.
    ///
    /// Signature lines from other keys (another name or key id: the log's own
    /// signature, other witnesses) are ignored; of several lines from this
    /// key, the first is checked. An `add-checkpoint` response can be checked
    /// by appending it to the checkpoint note it answers. Fails if the note
    /// is malformed, has no cosignature from this key, or its cosignature
    /// from this key is malformed or does not verify. The note text itself
    /// is not parsed as a checkpoint.
    pub fn verify(&self, note: &str) -> Result<u64, CosignError> {
        let (text, found) = self.0.find(note)?;
        let Some(blob) = found else {
            return Err(CosignError::NoMatchingCosignature {
                name: self.0.name.clone(),
                key_id: self.0.key_id,
            });
        };
        let (timestamp, signature) = parse_timestamped_signature(&blob)?;
        let message = signed_message(timestamp, text);
        self.0
            .key
            .verify_strict(message.as_bytes(), &signature)
            .map_err(|_| CosignError::InvalidCosignature {
                name: self.0.name.clone(),
                key_id: self.0.key_id,
            })?;
        Ok(timestamp)
    }
}

impl fmt::Display for CosignatureVerifier {
    /// Writes the verifier key string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.verifier_key(ALG_COSIGNATURE_V1))
    }
}

impl FromStr for CosignatureVerifier {
    type Err = CosignError;

    fn from_str(s: &str) -> Result<Self, CosignError> {
        Self::from_verifier_key(s)
    }
}

/// The body of a C2SP `tlog-witness` `add-checkpoint` request: the size of
/// the checkpoint the witness last cosigned for the log, a consistency proof
/// from that size to the new checkpoint's, and the new checkpoint as a signed
/// note.
///
/// Its text is `old <size>\n`, one line per proof hash (padded standard
/// base64), an empty line, then the signed note. [`AddCheckpoint::parse`]
/// refusing a body calls for "400 Bad Request"; the proof and the note's
/// signatures are checked by the witness afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The tree size of the latest checkpoint the witness cosigned for the
    /// log, or 0 if none.
    pub old_size: u64,
    /// The RFC 6962 consistency proof from `old_size` to the checkpoint's
    /// size: at most [`MAX_PROOF_LINES`] hashes, none when `old_size` is 0.
    pub proof: Vec<Hash>,
    /// The checkpoint as a signed note (text, blank line, one or more
    /// signature lines), ending in a newline.
    pub checkpoint_note: String,
}

impl AddCheckpoint {
    /// Parses a request body strictly: at most [`MAX_ADD_CHECKPOINT_BODY`]
    /// bytes; `old <size>` in ASCII decimal without leading zeros (except
    /// `0`); at most [`MAX_PROOF_LINES`] proof lines, each exactly 32 bytes in
    /// padded standard base64, and none when the old size is 0; an empty
    /// line; then a signed note whose text is a checkpoint of a size no
    /// smaller than the old size. Every line ends in a newline.
    pub fn parse(body: &str) -> Result<Self, CosignError> {
        let malformed = CosignError::MalformedRequest;
        if body.len() > MAX_ADD_CHECKPOINT_BODY {
            return Err(CosignError::RequestTooLarge {
                size: body.len(),
                max: MAX_ADD_CHECKPOINT_BODY,
            });
        }
        let (old_line, mut rest) = body.split_once('\n').ok_or(malformed(
            "it does not start with an old size line ending in a newline",
        ))?;
        let old_size = old_line
            .strip_prefix("old ")
            .ok_or(malformed("the first line is not \"old <size>\""))?;
        let old_size = parse_size(old_size).ok_or(malformed(
            "the old size is not a decimal number without leading zeros",
        ))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(malformed(
                "there is no empty line between the old size and the checkpoint",
            ))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed("the consistency proof has more than 63 lines"));
            }
            let hash: Hash = BASE64
                .decode(line)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or(malformed(
                    "a consistency proof line is not a 32-byte hash in padded standard base64",
                ))?;
            proof.push(hash);
        }
        if old_size == 0 && !proof.is_empty() {
            return Err(malformed(
                "the consistency proof must be empty when the old size is 0",
            ));
        }
        if rest.is_empty() {
            return Err(malformed("there is no checkpoint after the empty line"));
        }
        let request = Self {
            old_size,
            proof,
            checkpoint_note: rest.to_owned(),
        };
        let checkpoint = request.checkpoint()?;
        if old_size > checkpoint.size {
            return Err(malformed(
                "the old size is larger than the checkpoint's tree size",
            ));
        }
        Ok(request)
    }

    /// Returns the request body; [`AddCheckpoint::parse`] gives back `self`
    /// from it whenever it accepts it.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint_note);
        body
    }

    /// Parses the checkpoint in [`AddCheckpoint::checkpoint_note`] without
    /// checking any of its signatures: the witness looks up the log's keys
    /// by its origin, then verifies the note with them.
    pub fn checkpoint(&self) -> Result<Checkpoint, CosignError> {
        let (text, _signatures) = split_note(&self.checkpoint_note)?;
        Ok(Checkpoint::parse(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::note::{key_id, parse_signature_line, NoteSigner, NoteVerifier};
    use super::*;
    use ed25519_dalek::VerifyingKey;

    const ORIGIN: &str = "example.com/behind-the-sofa";
    const WITNESS: &str = "witness.example.com/w1";
    const TIMESTAMP: u64 = 1679315147;

    fn root() -> Hash {
        BASE64
            .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
            .unwrap()
            .try_into()
            .unwrap()
    }

    fn checkpoint_text() -> String {
        Checkpoint::new(ORIGIN, 20852163, root()).to_text()
    }

    fn log_signer() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap()
    }

    fn witness() -> CosignerKey {
        CosignerKey::from_seed(WITNESS, &[2; 32]).unwrap()
    }

    /// The log's signed checkpoint with `lines` appended.
    fn note_with(lines: &str) -> String {
        format!("{}{lines}", log_signer().sign(&checkpoint_text()).unwrap())
    }

    #[test]
    fn keys_round_trip() {
        let key = witness();
        let skey = key.private_key();
        assert!(skey.starts_with(&format!("PRIVATE+KEY+{WITNESS}+{:08x}+", key.key_id())));
        let seed = BASE64.decode(&skey[skey.len() - 44..]).unwrap();
        assert_eq!(seed, [&[4u8][..], &[2; 32]].concat());
        let again = CosignerKey::from_private_key(&skey).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        assert_eq!(skey.parse::<CosignerKey>().unwrap().private_key(), skey);

        let vkey = key.verifier_key();
        let (vkey_prefix, material) = vkey.split_at(vkey.len() - 44);
        assert_eq!(vkey_prefix, format!("{WITNESS}+{:08x}+", key.key_id()));
        assert_eq!(BASE64.decode(material).unwrap()[0], 0x04);
        let verifier = CosignatureVerifier::from_verifier_key(&vkey).unwrap();
        assert_eq!(verifier, key.verifier());
        assert_eq!(verifier.to_string(), vkey);
        assert_eq!(vkey.parse::<CosignatureVerifier>().unwrap(), verifier);
        assert_eq!(verifier.name(), WITNESS);
        assert_eq!(verifier.key_id(), key.key_id());
        assert_eq!(
            CosignatureVerifier::from_public_key(WITNESS, &verifier.public_key()).unwrap(),
            verifier
        );

        let generated = CosignerKey::generate(WITNESS).unwrap();
        assert_ne!(generated.verifier(), verifier);
        assert_eq!(
            CosignerKey::from_private_key(&generated.private_key())
                .unwrap()
                .verifier(),
            generated.verifier()
        );

        // Debug does not show the private key.
        assert_eq!(
            format!("{key:?}"),
            format!(
                "CosignerKey {{ name: \"{WITNESS}\", key_id: {:08x}, .. }}",
                key.key_id()
            )
        );
    }

    #[test]
    fn key_id_uses_type_0x04() {
        let key = witness();
        let public_key = key.verifier().public_key();
        let mut preimage = format!("{WITNESS}\n").into_bytes();
        preimage.push(0x04);
        preimage.extend_from_slice(&public_key);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&preimage);
        let expected = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert_eq!(key.key_id(), expected);
        assert_eq!(cosigner_key_id(WITNESS, &public_key), expected);
        // The same key as a note key has another id.
        let note_key = NoteSigner::from_seed(WITNESS, &[2; 32]).unwrap();
        assert_eq!(note_key.verifier().public_key(), public_key);
        assert_eq!(note_key.key_id(), key_id(WITNESS, &public_key));
        assert_ne!(note_key.key_id(), key.key_id());
    }

    #[test]
    fn note_keys_are_refused_with_a_clear_error() {
        let note_key = NoteSigner::from_seed(WITNESS, &[2; 32]).unwrap();
        assert_eq!(
            CosignatureVerifier::from_verifier_key(&note_key.verifier_key()),
            Err(CosignError::UnsupportedKeyType(0x01))
        );
        assert_eq!(
            CosignerKey::from_private_key(&note_key.private_key()).unwrap_err(),
            CosignError::UnsupportedKeyType(0x01)
        );
        assert_eq!(
            CosignError::UnsupportedKeyType(1).to_string(),
            "the key uses signature type 0x01, but a cosigner key must be an Ed25519 \
             cosignature/v1 key (type 0x04)"
        );
        // And the other way round: a cosigner key is not a note key.
        assert_eq!(
            NoteVerifier::from_verifier_key(&witness().verifier_key()),
            Err(NoteError::UnsupportedAlgorithm(0x04))
        );
    }

    #[test]
    fn bad_key_strings_are_rejected() {
        let key = witness();
        let vkey = key.verifier_key();
        let (prefix, material) = vkey.rsplit_once('+').unwrap();
        let wrong_id = format!("{WITNESS}+{:08x}+{material}", key.key_id() ^ 1);
        assert_eq!(
            CosignatureVerifier::from_verifier_key(&wrong_id),
            Err(CosignError::Note(NoteError::KeyIdMismatch {
                found: key.key_id() ^ 1,
                expected: key.key_id()
            }))
        );
        for bad in [
            format!("other.example+{:08x}+{material}", key.key_id()),
            format!("{prefix}+{}", &material[1..]),
            format!("{prefix}+{}", BASE64.encode([4u8; 32])),
            format!("{WITNESS}+{:07x}+{material}", key.key_id() >> 4),
            prefix.to_owned(),
            format!("+{:08x}+{material}", key.key_id()),
            format!("bad name+{:08x}+{material}", key.key_id()),
        ] {
            assert!(
                matches!(
                    CosignatureVerifier::from_verifier_key(&bad),
                    Err(CosignError::Note(_))
                ),
                "accepted {bad:?}"
            );
        }
        let skey = key.private_key();
        for bad in [
            skey.trim_start_matches("PRIVATE+KEY+").to_owned(),
            skey.replacen(&format!("{:08x}", key.key_id()), "00000000", 1),
            vkey.clone(),
        ] {
            assert!(
                CosignerKey::from_private_key(&bad).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(matches!(
            CosignerKey::from_seed("a+b", &[0; 32]),
            Err(CosignError::Note(NoteError::InvalidName(_)))
        ));
    }

    #[test]
    fn cosignature_verifies_and_returns_the_timestamp() {
        let key = witness();
        let line = key.cosign(&checkpoint_text(), TIMESTAMP).unwrap();
        assert!(line.starts_with(&format!("\u{2014} {WITNESS} ")));
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let note = note_with(&line);
        assert_eq!(key.verifier().verify(&note), Ok(TIMESTAMP));
        // The log's signature still verifies beside it.
        assert_eq!(
            log_signer().verifier().verify(&note).unwrap(),
            checkpoint_text()
        );
        // Ed25519 is deterministic: the same input gives the same line.
        assert_eq!(key.cosign(&checkpoint_text(), TIMESTAMP).unwrap(), line);
        for timestamp in [0, 1, MAX_TIMESTAMP] {
            let line = key.cosign(&checkpoint_text(), timestamp).unwrap();
            assert_eq!(key.verifier().verify(&note_with(&line)), Ok(timestamp));
        }
    }

    #[test]
    fn signed_message_is_exactly_the_specified_one() {
        let key = witness();
        let text = checkpoint_text();
        let line = key.cosign(&text, TIMESTAMP).unwrap();
        let b64 = line.trim_end().rsplit(' ').next().unwrap();
        let blob = BASE64.decode(b64).unwrap();
        assert_eq!(blob.len(), 4 + 8 + 64);
        assert_eq!(blob[..4], key.key_id().to_be_bytes());
        assert_eq!(blob[4..12], TIMESTAMP.to_be_bytes());
        let message = "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n\
                       CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let signature = Signature::from_slice(&blob[12..]).unwrap();
        let public_key = VerifyingKey::from_bytes(&key.verifier().public_key()).unwrap();
        assert!(public_key
            .verify_strict(message.as_bytes(), &signature)
            .is_ok());
        // Not the bare checkpoint text, nor a padded timestamp.
        assert!(public_key
            .verify_strict(text.as_bytes(), &signature)
            .is_err());
        let padded = message.replace("time 1679315147", "time 01679315147");
        assert!(public_key
            .verify_strict(padded.as_bytes(), &signature)
            .is_err());
    }

    #[test]
    fn changed_body_timestamp_or_key_fails() {
        let key = witness();
        let verifier = key.verifier();
        let line = key.cosign(&checkpoint_text(), TIMESTAMP).unwrap();
        let invalid = Err(CosignError::InvalidCosignature {
            name: WITNESS.into(),
            key_id: key.key_id(),
        });

        // Another body: a different tree size.
        let other = Checkpoint::new(ORIGIN, 20852164, root()).to_text();
        let note = format!("{}{line}", log_signer().sign(&other).unwrap());
        assert_eq!(verifier.verify(&note), invalid);

        // Another timestamp in the line.
        let mut blob = BASE64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        blob[11] ^= 1;
        let retimed = format!("\u{2014} {WITNESS} {}\n", BASE64.encode(&blob));
        assert_eq!(verifier.verify(&note_with(&retimed)), invalid);

        // Another key's signature under this key's name and id.
        let other_key = CosignerKey::from_seed(WITNESS, &[3; 32]).unwrap();
        let mut blob = BASE64
            .decode(
                other_key
                    .cosign(&checkpoint_text(), TIMESTAMP)
                    .unwrap()
                    .trim_end()
                    .rsplit(' ')
                    .next()
                    .unwrap(),
            )
            .unwrap();
        blob[..4].copy_from_slice(&key.key_id().to_be_bytes());
        let forged = format!("\u{2014} {WITNESS} {}\n", BASE64.encode(&blob));
        assert_eq!(verifier.verify(&note_with(&forged)), invalid);

        // Another key under the same name: its id differs, so nothing matches.
        assert_eq!(
            other_key.verifier().verify(&note_with(&line)),
            Err(CosignError::NoMatchingCosignature {
                name: WITNESS.into(),
                key_id: other_key.key_id()
            })
        );

        // A timestamp above 2^63 - 1 is refused, signing and verifying.
        assert_eq!(
            key.cosign(&checkpoint_text(), MAX_TIMESTAMP + 1),
            Err(CosignError::TimestampOutOfRange(MAX_TIMESTAMP + 1))
        );
        let mut blob = BASE64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        blob[4] |= 0x80;
        let huge = format!("\u{2014} {WITNESS} {}\n", BASE64.encode(&blob));
        assert!(matches!(
            verifier.verify(&note_with(&huge)),
            Err(CosignError::TimestampOutOfRange(_))
        ));

        // A plain note signature by the same key under the same name is not
        // a cosignature (its id has type 0x01).
        let note_key = NoteSigner::from_seed(WITNESS, &[2; 32]).unwrap();
        let signed = note_key.sign(&checkpoint_text()).unwrap();
        assert!(matches!(
            verifier.verify(&signed),
            Err(CosignError::NoMatchingCosignature { .. })
        ));
    }

    #[test]
    fn other_keys_lines_are_ignored() {
        let key = witness();
        let verifier = key.verifier();
        let line = key.cosign(&checkpoint_text(), TIMESTAMP).unwrap();
        let w2 = CosignerKey::from_seed("witness.example.com/w2", &[4; 32]).unwrap();
        let w2_line = w2.cosign(&checkpoint_text(), TIMESTAMP + 5).unwrap();
        // Unknown lines, even of an unexpected length, before and after.
        let odd = "\u{2014} someone.example AAAAAAAA\n";
        let note = note_with(&format!("{w2_line}{odd}{line}{w2_line}"));
        assert_eq!(verifier.verify(&note), Ok(TIMESTAMP));
        assert_eq!(w2.verifier().verify(&note), Ok(TIMESTAMP + 5));
        // Only other keys' lines: no match.
        assert_eq!(
            verifier.verify(&note_with(&w2_line)),
            Err(CosignError::NoMatchingCosignature {
                name: WITNESS.into(),
                key_id: key.key_id()
            })
        );
        // A line from this key of the wrong length is malformed.
        let mut short = key.key_id().to_be_bytes().to_vec();
        short.extend_from_slice(&[0; 64]);
        let short = format!("\u{2014} {WITNESS} {}\n", BASE64.encode(short));
        assert!(matches!(
            verifier.verify(&note_with(&short)),
            Err(CosignError::MalformedCosignature(_))
        ));
        // A malformed note is refused.
        assert!(matches!(
            verifier.verify(&format!("{}{line}", checkpoint_text())),
            Err(CosignError::Note(NoteError::MalformedNote(_)))
        ));
    }

    #[test]
    fn spec_example_line_frames_a_timestamped_signature() {
        // c2sp.org/tlog-cosignature: the example witness line, whose
        // timestamp is the one of the example signed message.
        let line = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let (name, key_id, blob) = parse_signature_line(line).unwrap();
        assert_eq!(name, WITNESS);
        assert_eq!(key_id, 0x8d66cf3f);
        let (timestamp, _) = parse_timestamped_signature(&blob).unwrap();
        assert_eq!(timestamp, TIMESTAMP);
    }

    #[test]
    fn cosign_refuses_non_checkpoints() {
        let key = witness();
        for text in ["", "hello\n", "o\n5\n", "o\n05\nAAAA\n", "o\n1\n"] {
            assert!(
                matches!(
                    key.cosign(text, TIMESTAMP),
                    Err(CosignError::Note(NoteError::MalformedCheckpoint(_)))
                ),
                "cosigned {text:?}"
            );
        }
    }

    fn proof_hash(i: u8) -> Hash {
        [i; 32]
    }

    fn request(old_size: u64, proof: Vec<Hash>) -> AddCheckpoint {
        AddCheckpoint {
            old_size,
            proof,
            checkpoint_note: note_with(&witness().cosign(&checkpoint_text(), TIMESTAMP).unwrap()),
        }
    }

    #[test]
    fn add_checkpoint_round_trips() {
        for req in [
            request(0, vec![]),
            request(20852014, vec![proof_hash(1), proof_hash(2), proof_hash(3)]),
            request(20852163, vec![]),
            request(5, (0..63).map(proof_hash).collect()),
        ] {
            let body = req.to_body();
            assert_eq!(AddCheckpoint::parse(&body).unwrap(), req);
            assert_eq!(AddCheckpoint::parse(&body).unwrap().to_body(), body);
            assert_eq!(req.checkpoint().unwrap().size, 20852163);
        }
        let req = request(7, vec![proof_hash(9)]);
        let hash = BASE64.encode(proof_hash(9));
        assert_eq!(
            req.to_body(),
            format!("old 7\n{hash}\n\n{}", req.checkpoint_note)
        );
        assert_eq!(
            request(0, vec![]).to_body(),
            format!("old 0\n\n{}", req.checkpoint_note)
        );
    }

    #[test]
    fn add_checkpoint_refusals() {
        let note = note_with("");
        let hash = BASE64.encode(proof_hash(1));
        let malformed = |body: &str| match AddCheckpoint::parse(body) {
            Err(CosignError::MalformedRequest(why)) => why,
            other => panic!("accepted {body:?}: {other:?}"),
        };
        assert_eq!(
            malformed(&format!("old 05\n{hash}\n\n{note}")),
            "the old size is not a decimal number without leading zeros"
        );
        assert_eq!(
            malformed(&format!("old 00\n\n{note}")),
            "the old size is not a decimal number without leading zeros"
        );
        for bad_old in [
            "old -1", "old +5", "old  5", "old 5 ", "old", "Old 5", "old x",
        ] {
            malformed(&format!("{bad_old}\n\n{note}"));
        }
        assert_eq!(
            malformed(&format!(
                "old 5\n{}\n{note}",
                format!("{hash}\n").repeat(64)
            )),
            "the consistency proof has more than 63 lines"
        );
        assert_eq!(
            malformed(&format!("old 0\n{hash}\n\n{note}")),
            "the consistency proof must be empty when the old size is 0"
        );
        // Without the blank line the note's lines are read as proof lines.
        assert_eq!(
            malformed(&format!("old 5\n{hash}\n{}", checkpoint_text())),
            "a consistency proof line is not a 32-byte hash in padded standard base64"
        );
        assert_eq!(
            malformed(&format!("old 5\n{hash}\n")),
            "there is no empty line between the old size and the checkpoint"
        );
        assert_eq!(
            malformed("old 5"),
            "it does not start with an old size line ending in a newline"
        );
        for bad_hash in [
            "!!!!".to_string(),
            hash.trim_end_matches('=').to_owned(),
            hash.replace('A', "-"),
            BASE64.encode([1u8; 31]),
            BASE64.encode([1u8; 33]),
            format!("{hash} "),
        ] {
            assert_eq!(
                malformed(&format!("old 5\n{bad_hash}\n\n{note}")),
                "a consistency proof line is not a 32-byte hash in padded standard base64",
                "{bad_hash:?}"
            );
        }
        assert_eq!(
            malformed("old 5\n\n"),
            "there is no checkpoint after the empty line"
        );
        assert_eq!(
            malformed(&format!("old 20852164\n{hash}\n\n{note}")),
            "the old size is larger than the checkpoint's tree size"
        );
        // The checkpoint must be a signed note holding a checkpoint.
        assert!(matches!(
            AddCheckpoint::parse(&format!("old 5\n\n{}", checkpoint_text())),
            Err(CosignError::Note(NoteError::MalformedNote(_)))
        ));
        assert!(matches!(
            AddCheckpoint::parse(&format!("old 5\n\n{}", note.trim_end())),
            Err(CosignError::Note(NoteError::MalformedNote(_)))
        ));
        let not_checkpoint = log_signer().sign("hello\n").unwrap();
        assert!(matches!(
            AddCheckpoint::parse(&format!("old 5\n\n{not_checkpoint}")),
            Err(CosignError::Note(NoteError::MalformedCheckpoint(_)))
        ));
        // The size bound: a body just over 64 KiB, however it is made.
        let mut big = format!("old 5\n\n{note}");
        let padding = MAX_ADD_CHECKPOINT_BODY + 1 - big.len();
        big.push_str(&"x".repeat(padding));
        assert_eq!(
            AddCheckpoint::parse(&big),
            Err(CosignError::RequestTooLarge {
                size: MAX_ADD_CHECKPOINT_BODY + 1,
                max: MAX_ADD_CHECKPOINT_BODY
            })
        );
        assert_eq!(
            CosignError::RequestTooLarge {
                size: 65537,
                max: 65536
            }
            .to_string(),
            "the add-checkpoint request body has 65537 bytes, more than the 65536 allowed"
        );
    }
}
