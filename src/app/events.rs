//! Every audit event the gateway records, built here and nowhere else: a message accepted,
//! placed in an inbox, answering another; messages read; a subscription acknowledged; a call
//! or a handshake refused. The store writes the leaves; what they say is decided here.

use crate::auth::identity::Caller;
use crate::domain::violations::bounded;
use crate::pb::{self, audit_leaf::Event};
use crate::storage::{MessageEvents, NewMessage};

fn leaf(event: Event) -> pb::AuditLeaf {
    // The committer stamps the time of the group commit that makes the leaf durable.
    pb::AuditLeaf {
        time: None,
        event: Some(event),
    }
}

/// The leaves of stored messages, for the committer.
pub struct Events;

impl MessageEvents for Events {
    fn accepted(&self, m: &NewMessage, seq: u64) -> pb::AuditLeaf {
        leaf(Event::Accepted(pb::MessageAccepted {
            sender: m.sender.clone(),
            officer: m.officer.clone().unwrap_or_default(),
            id: m.id.clone(),
            seq,
            kind: m.kind as i32,
            envelope_sha256: hex::encode(m.digest),
            recipients: m.deliver_to.clone(),
        }))
    }

    fn delivered(&self, m: &NewMessage, seq: u64, recipient: &str, inbox_no: u64) -> pb::AuditLeaf {
        leaf(Event::Delivered(pb::MessageDelivered {
            recipient: recipient.to_string(),
            inbox_no,
            seq,
            sender: m.sender.clone(),
        }))
    }

    fn answered(&self, m: &NewMessage, seq: u64) -> Option<pb::AuditLeaf> {
        let (answered_sender, answered_seq) = m.answers.as_ref()?;
        Some(leaf(Event::Answered(pb::MessageAnswered {
            sender: m.sender.clone(),
            seq,
            answered_sender: answered_sender.clone(),
            answered_seq: *answered_seq,
            kind: m.kind as i32,
        })))
    }
}

/// `caller` was given the messages `seqs` by `method`.
pub fn read(caller: &Caller, method: &str, seqs: Vec<u64>) -> pb::AuditLeaf {
    leaf(Event::Read(pb::MessagesRead {
        reader: caller.id().to_string(),
        officer: caller.officer.clone().unwrap_or_default(),
        method: method.to_string(),
        seqs,
        digest: String::new(),
    }))
}

/// `caller` acknowledged its durable subscription `name` up to `up_to_seq`.
pub fn acked(caller: &Caller, name: &str, up_to_seq: u64) -> pb::AuditLeaf {
    leaf(Event::Acked(pb::SubscriptionAcked {
        participant: caller.id().to_string(),
        officer: caller.officer.clone().unwrap_or_default(),
        name: name.to_string(),
        up_to_seq,
    }))
}

/// A refused call or handshake, as the transport saw it.
#[derive(Clone, Debug, Default)]
pub struct Refusal {
    /// The participant the client certificate names, if any.
    pub participant: String,
    /// SHA-256 of the client certificate, hex, if one was presented.
    pub certificate_sha256: String,
    /// The remote address.
    pub peer: String,
    /// The gRPC method, or `handshake`.
    pub method: String,
    /// The canonical gRPC code name of the answer.
    pub code: String,
    /// Why, as the caller was told.
    pub reason: String,
}

/// Most bytes of a refusal's reason in its leaf: the status message, already bounded, with
/// room for nothing more. Whatever a caller sends, its refusal's leaf stays small.
pub const MAX_REFUSAL_REASON_BYTES: usize = 1024;
/// Most bytes of each other text of a refusal's leaf (participant, peer, method, code).
const MAX_REFUSAL_FIELD_BYTES: usize = 256;

/// The leaf of a refusal, every text in it bounded.
pub fn refused(refusal: Refusal) -> pb::AuditLeaf {
    let short = |text: String| bounded(text, MAX_REFUSAL_FIELD_BYTES);
    leaf(Event::Refused(pb::CallRefused {
        participant: short(refusal.participant),
        certificate_sha256: short(refusal.certificate_sha256),
        peer: short(refusal.peer),
        method: short(refusal.method),
        code: short(refusal.code),
        reason: bounded(refusal.reason, MAX_REFUSAL_REASON_BYTES),
    }))
}

/// The leaf of refused handshakes counted since `since`: `participant` is the registered
/// participant every entry's certificate names, or empty.
pub fn handshakes_refused(
    participant: String,
    since: std::time::SystemTime,
    entries: Vec<pb::RefusedHandshakes>,
    untallied: u64,
) -> pb::AuditLeaf {
    leaf(Event::HandshakesRefused(pb::HandshakesRefused {
        participant,
        since: Some(since.into()),
        entries,
        untallied,
    }))
}

/// The leaf recording that the gateway, as witness of a peer's log, refused a checkpoint not
/// consistent with the one it cosigned last: evidence of a fork, kept with the checkpoint.
pub fn witness_refused(refused: pb::WitnessRefused) -> pb::AuditLeaf {
    leaf(Event::WitnessRefused(refused))
}
