//! The records of the exchange log and how they are framed on disk.
//!
//! The log is a sequence of records, each framed as
//! `magic "ix" (2 bytes) ‖ length (u32 LE) ‖ CRC-32 (u32 LE) of length and payload ‖ payload`,
//! the payload an encoded [`LogRecord`]: an audit leaf (the exact bytes its hash covers), a
//! stored message (envelope bytes and receipt), a signed checkpoint, or a durable
//! subscription's cursor. A group commit appends its frames with one write and one
//! `fdatasync`.
//!
//! Reading a log back tells three cases apart ([`Frames`]): a whole, valid frame; a torn end
//! (the file ends inside a frame, or only zeros follow — what a crash leaves of a write that
//! was never acknowledged); and a damaged frame (complete, but its checksum or magic is wrong
//! — what a flipped bit leaves of acknowledged data, never cut silently).
//!
//! A leaf commits to an envelope's digest, never to its bytes, and messages are records of
//! their own: erasing an envelope (a retention rule) leaves every leaf, tile and proof intact.

use crate::pb;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"ix";
/// Bytes before a frame's payload.
pub const HEADER_LEN: usize = 10;
/// The largest payload a frame may carry (a message is at most a few MiB).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// One record of the log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRecord {
    /// What the record holds.
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6")]
    pub body: Option<Body>,
}

/// What a record holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    /// An audit leaf.
    #[prost(message, tag = "1")]
    Leaf(LeafRecord),
    /// A stored message.
    #[prost(message, tag = "2")]
    Message(MessageRecord),
    /// A signed checkpoint.
    #[prost(message, tag = "3")]
    Checkpoint(CheckpointRecord),
    /// A durable subscription's acknowledged cursor.
    #[prost(message, tag = "4")]
    Cursor(CursorRecord),
    /// The end of a group commit: the records before it since the last one were written
    /// together, and indexed together.
    #[prost(message, tag = "5")]
    Commit(CommitRecord),
    /// A peer's checkpoint this gateway cosigned as its witness: the latest it cosigned for
    /// that log, which every later checkpoint of the log must be consistent with.
    #[prost(message, tag = "6")]
    Witnessed(WitnessedRecord),
}

/// The latest checkpoint of log `origin` this gateway cosigned as a witness (C2SP
/// tlog-witness): the witness's state for that log, durable before the cosignature is given.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WitnessedRecord {
    /// The log's origin line.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// The checkpoint as the log signed it: a C2SP signed note.
    #[prost(string, tag = "2")]
    pub note: String,
}

/// The end of a group commit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitRecord {
    /// Records the commit wrote before this one.
    #[prost(uint32, tag = "1")]
    pub records: u32,
}

/// Audit leaf `index`: `data` is an encoded `ipex.v1.AuditLeaf`, hashed as it is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeafRecord {
    /// The leaf's index in the tree.
    #[prost(uint64, tag = "1")]
    pub index: u64,
    /// The leaf's data.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// A stored message: the canonical envelope bytes and the receipt given to its sender.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageRecord {
    /// The canonical envelope bytes (protobuf, sender and kind set by the gateway).
    #[prost(bytes = "vec", tag = "1")]
    pub envelope: Vec<u8>,
    /// The receipt: sequence number, inbox placements, leaf index, digest, time.
    #[prost(message, optional, tag = "2")]
    pub receipt: Option<pb::Receipt>,
}

/// A checkpoint the gateway signed: a C2SP signed note.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointRecord {
    /// The note text.
    #[prost(string, tag = "1")]
    pub note: String,
}

/// Durable subscription `name` of `participant` acknowledged up to `seq`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CursorRecord {
    /// The subscriber.
    #[prost(string, tag = "1")]
    pub participant: String,
    /// The subscription's name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The acknowledged sequence number.
    #[prost(uint64, tag = "3")]
    pub seq: u64,
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the frame of `payload` to `out`; returns the frame's length.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) -> usize {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    HEADER_LEN + payload.len()
}

/// Appends the frame of `record`; returns the frame's length.
pub fn frame_record(record: &LogRecord, out: &mut Vec<u8>) -> usize {
    frame(&prost::Message::encode_to_vec(record), out)
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside a frame, or only zeros follow: an unacknowledged write torn by a
    /// crash.
    #[error("torn record at offset {offset}")]
    Torn {
        /// Where the torn frame begins.
        offset: u64,
    },
    /// A complete frame that is not what was written.
    #[error("damaged record at offset {offset}: {reason}")]
    Damaged {
        /// Where the frame begins.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Checks one whole frame read back from `offset` and returns its payload.
pub fn unframe(bytes: &[u8], offset: u64) -> Result<&[u8], FrameError> {
    let damaged = |reason: String| FrameError::Damaged { offset, reason };
    if bytes.len() < HEADER_LEN {
        return Err(damaged(format!("only {} bytes", bytes.len())));
    }
    if bytes[..2] != MAGIC {
        return Err(damaged("no record begins here".into()));
    }
    let len: [u8; 4] = bytes[2..6].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(bytes[6..10].try_into().expect("4 bytes"));
    let size = u32::from_le_bytes(len) as usize;
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + size)
        .ok_or_else(|| damaged(format!("{size} bytes of payload announced")))?;
    if checksum(&len, payload) != crc {
        return Err(damaged("checksum mismatch".into()));
    }
    Ok(payload)
}

/// The frames of a buffer that starts at log offset `base`, in order: `(offset, payload)`,
/// then at most one error, after which the iterator ends.
pub struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
    base: u64,
    done: bool,
}

impl<'a> Frames<'a> {
    /// Reads the frames of `bytes`, the log from offset `base` on.
    pub fn new(bytes: &'a [u8], base: u64) -> Frames<'a> {
        Frames {
            bytes,
            at: 0,
            base,
            done: false,
        }
    }

    /// The offset just after the last whole frame returned.
    pub fn position(&self) -> u64 {
        self.base + self.at as u64
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(u64, &'a [u8]), FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.at >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.at..];
        let offset = self.base + self.at as u64;
        let torn = || Some(Err(FrameError::Torn { offset }));
        // Zeros to the end: space a file system gave a write that never reached the disk.
        if rest.iter().all(|&b| b == 0) {
            self.done = true;
            return torn();
        }
        if rest.len() < HEADER_LEN {
            self.done = true;
            return if MAGIC.starts_with(&rest[..rest.len().min(2)]) {
                torn()
            } else {
                Some(Err(FrameError::Damaged {
                    offset,
                    reason: "no record begins here".into(),
                }))
            };
        }
        let size = u32::from_le_bytes(rest[2..6].try_into().expect("4 bytes")) as usize;
        if rest[..2] == MAGIC && size <= MAX_PAYLOAD && rest.len() < HEADER_LEN + size {
            self.done = true;
            return torn();
        }
        match unframe(rest, offset) {
            Ok(payload) => {
                self.at += HEADER_LEN + payload.len();
                Some(Ok((offset, payload)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes the payload of a frame.
pub fn decode(payload: &[u8], offset: u64) -> Result<LogRecord, FrameError> {
    prost::Message::decode(payload).map_err(|e| FrameError::Damaged {
        offset,
        reason: format!("not a log record: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_frames() -> Vec<u8> {
        let mut out = Vec::new();
        frame(b"first", &mut out);
        frame(b"second record", &mut out);
        out
    }

    #[test]
    fn frames_read_back_in_order_with_their_offsets() {
        let bytes = two_frames();
        let got: Vec<_> = Frames::new(&bytes, 100).collect();
        assert_eq!(
            got,
            vec![
                Ok((100, b"first".as_slice())),
                Ok((100 + HEADER_LEN as u64 + 5, b"second record".as_slice()))
            ]
        );
    }

    #[test]
    fn a_cut_or_zeroed_end_is_torn() {
        let bytes = two_frames();
        let second = HEADER_LEN + 5;
        for cut in [second + 1, second + HEADER_LEN, bytes.len() - 1] {
            let got: Vec<_> = Frames::new(&bytes[..cut], 0).collect();
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(
                got[1],
                Err(FrameError::Torn {
                    offset: second as u64
                })
            );
        }
        let mut zeroed = bytes.clone();
        zeroed.extend_from_slice(&[0; 4096]);
        let got: Vec<_> = Frames::new(&zeroed, 0).collect();
        assert_eq!(
            got[2],
            Err(FrameError::Torn {
                offset: bytes.len() as u64
            })
        );
    }

    #[test]
    fn a_flipped_bit_is_damage_not_a_torn_end() {
        let mut bytes = two_frames();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        let got: Vec<_> = Frames::new(&bytes, 0).collect();
        assert!(
            matches!(&got[1], Err(FrameError::Damaged { offset, reason })
                if *offset == (HEADER_LEN + 5) as u64 && reason.contains("checksum")),
            "{got:?}"
        );
        let mut bytes = two_frames();
        bytes[0] = b'j';
        let got: Vec<_> = Frames::new(&bytes, 0).collect();
        assert!(matches!(got[0], Err(FrameError::Damaged { offset: 0, .. })));
    }

    #[test]
    fn records_round_trip() {
        let record = LogRecord {
            body: Some(Body::Leaf(LeafRecord {
                index: 7,
                data: vec![1, 2, 3],
            })),
        };
        let mut out = Vec::new();
        let n = frame_record(&record, &mut out);
        assert_eq!(n, out.len());
        let payload = unframe(&out, 0).unwrap();
        assert_eq!(decode(payload, 0).unwrap(), record);
    }
}
