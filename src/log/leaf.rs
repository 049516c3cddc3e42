//! Leaves and checkpoints as the gateway keeps them: who may see a leaf's data (its actors
//! and the recipients it names; everyone else sees its hash only), and a signed checkpoint
//! with its parsed size and root.

use super::merkle::Hash;
use crate::pb;
use prost::Message;

/// A checkpoint as signed and stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed note text.
    pub note: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// The participants who may see a leaf's data: its actors and the recipients it names.
pub fn parties(leaf: &pb::AuditLeaf) -> Vec<&str> {
    use pb::audit_leaf::Event;
    match &leaf.event {
        Some(Event::Accepted(e)) => std::iter::once(e.sender.as_str())
            .chain(e.recipients.iter().map(String::as_str))
            .collect(),
        Some(Event::Delivered(e)) => vec![e.recipient.as_str(), e.sender.as_str()],
        Some(Event::Read(e)) => vec![e.reader.as_str()],
        Some(Event::Answered(e)) => vec![e.sender.as_str(), e.answered_sender.as_str()],
        Some(Event::Acked(e)) => vec![e.participant.as_str()],
        Some(Event::Refused(e)) if !e.participant.is_empty() => vec![e.participant.as_str()],
        Some(Event::HandshakesRefused(e)) if !e.participant.is_empty() => {
            vec![e.participant.as_str()]
        }
        Some(Event::Refused(_))
        | Some(Event::HandshakesRefused(_))
        | Some(Event::WitnessRefused(_))
        | None => vec![],
    }
}

/// Is `participant` a party to the leaf encoded in `data`?
pub fn is_party(data: &[u8], participant: &str) -> bool {
    pb::AuditLeaf::decode(data)
        .map(|leaf| parties(&leaf).contains(&participant))
        .unwrap_or(false)
}
