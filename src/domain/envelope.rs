//! Validation of the proto messages: an [`Envelope`](crate::pb::Envelope) becomes a
//! [`ValidEnvelope`] in one place, and every field that is wrong is named with its path.
//!
//! We keep the proto types as the data model (they are already typed, and a parallel set of
//! domain structs for seven payloads would be a second copy of the schema to keep in step);
//! what the rest of the gateway receives is the `ValidEnvelope` newtype, which can only be
//! built by passing validation.

use super::violations::Violations;
use super::{payload, vocab};
use crate::pb::limits::{MAX_RECIPIENTS, MAX_REFS, MAX_SIGNATURE_LEN, MAX_TERRITORIAL_SCOPE};
use crate::pb::{self, Kind, Tlp};
/// How far in the future `created_at` may lie (clock skew between organisations).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// The prefix of the ids of messages the gateway raises itself (listing alerts, seller
/// matches): refused in submitted ids, so that a derived message never takes a sender's id.
pub const DERIVED_ID_PREFIX: &str = "ipex:";
/// The payload schema version this gateway speaks.
pub const SCHEMA_VERSION: u32 = 1;

/// An envelope that passed validation, with the gateway's fields set: the sender is the
/// authenticated participant, the kind is derived from the payload, the schema version is
/// explicit. Only [`ValidEnvelope::new`] makes one.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEnvelope {
    /// The envelope as it will be stored.
    envelope: pb::Envelope,
    /// Its kind.
    kind: Kind,
}

impl ValidEnvelope {
    /// Validates `envelope` sent by `sender` at `now` (Unix seconds, for the clock-skew
    /// check of `created_at`); `path` prefixes field names in violations (`envelope`,
    /// `envelopes[3]`).
    pub fn new(
        mut envelope: pb::Envelope,
        sender: &str,
        path: &str,
        now: i64,
    ) -> Result<ValidEnvelope, Violations> {
        let mut v = Violations::default();
        if let Err(e) = vocab::message_id(&envelope.id) {
            v.add(format!("{path}.id"), e);
        } else if envelope.id.starts_with(DERIVED_ID_PREFIX) {
            v.add(
                format!("{path}.id"),
                format!(
                    "ids beginning with {DERIVED_ID_PREFIX:?} are reserved for the messages the gateway raises"
                ),
            );
        }
        let kind = match &envelope.payload {
            None => {
                v.add(
                    format!("{path}.payload"),
                    "is required: one of takedown_notice, takedown_outcome, seller_flag, \
                     seizure_notification, shipment_alert, data_request, data_response",
                );
                Kind::Unspecified
            }
            Some(payload) => {
                let kind = payload::kind_of(payload);
                if envelope.kind != Kind::Unspecified as i32 && envelope.kind != kind as i32 {
                    let given = Kind::try_from(envelope.kind)
                        .map(|k| k.as_str_name().to_string())
                        .unwrap_or_else(|_| envelope.kind.to_string());
                    v.add(
                        format!("{path}.kind"),
                        format!(
                            "{given} does not match the payload, which is {}",
                            kind.as_str_name()
                        ),
                    );
                }
                payload::validate_payload(payload, envelope.created_at.as_ref(), path, &mut v);
                kind
            }
        };
        match envelope.schema_version {
            0 | SCHEMA_VERSION => envelope.schema_version = SCHEMA_VERSION,
            other => v.add(
                format!("{path}.schema_version"),
                format!("version {other} is not supported; this gateway speaks {SCHEMA_VERSION}"),
            ),
        }
        check_created_at(envelope.created_at.as_ref(), now, path, &mut v);
        let tlp = match Tlp::try_from(envelope.tlp) {
            Ok(Tlp::Unspecified) => {
                v.add(
                    format!("{path}.tlp"),
                    "is required: TLP_CLEAR, TLP_GREEN, TLP_AMBER, TLP_AMBER_STRICT or TLP_RED",
                );
                Tlp::Unspecified
            }
            Ok(tlp) => tlp,
            Err(_) => {
                v.add(
                    format!("{path}.tlp"),
                    format!("{} is not a TLP value", envelope.tlp),
                );
                Tlp::Unspecified
            }
        };
        check_recipients(&envelope.recipients, sender, tlp, path, &mut v);
        if envelope.territorial_scope.len() > MAX_TERRITORIAL_SCOPE {
            v.add(
                format!("{path}.territorial_scope"),
                format!(
                    "at most {MAX_TERRITORIAL_SCOPE} countries, not {}",
                    envelope.territorial_scope.len()
                ),
            );
        }
        for (i, country) in envelope.territorial_scope.iter().enumerate() {
            if let Err(e) = vocab::country(country) {
                v.add(format!("{path}.territorial_scope[{i}]"), e);
            }
        }
        if envelope.refs.len() > MAX_REFS {
            v.add(
                format!("{path}.refs"),
                format!("at most {MAX_REFS} references, not {}", envelope.refs.len()),
            );
        }
        for (i, r) in envelope.refs.iter().enumerate() {
            check_ref(r, &format!("{path}.refs[{i}]"), &mut v);
        }
        if let Some(s) = &envelope.supersedes {
            check_ref(s, &format!("{path}.supersedes"), &mut v);
            if s.sender != sender {
                v.add(
                    format!("{path}.supersedes.sender"),
                    "a message can only supersede a message of its own sender",
                );
            }
        }
        if envelope.signature.len() > MAX_SIGNATURE_LEN {
            v.add(
                format!("{path}.signature"),
                format!(
                    "at most {MAX_SIGNATURE_LEN} characters, not {}",
                    envelope.signature.len()
                ),
            );
        }
        if !v.is_empty() {
            return Err(v);
        }
        envelope.sender = sender.to_string();
        envelope.kind = kind as i32;
        Ok(ValidEnvelope { envelope, kind })
    }

    /// The envelope as it will be stored.
    pub fn envelope(&self) -> &pb::Envelope {
        &self.envelope
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The envelope.
    pub fn into_inner(self) -> pb::Envelope {
        self.envelope
    }
}

fn check_created_at(
    created_at: Option<&prost_types::Timestamp>,
    now: i64,
    path: &str,
    v: &mut Violations,
) {
    let field = format!("{path}.created_at");
    let Some(ts) = created_at else {
        v.add(field, "is required");
        return;
    };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        v.add(field, "nanos must be 0 to 999999999");
        return;
    }
    if ts.seconds > now + MAX_CLOCK_SKEW_SECS {
        v.add(
            field,
            format!("lies more than {MAX_CLOCK_SKEW_SECS} s in the future"),
        );
    } else if ts.seconds < 946_684_800 {
        v.add(field, "lies before 2000-01-01");
    }
}

fn check_recipients(recipients: &[String], sender: &str, tlp: Tlp, path: &str, v: &mut Violations) {
    let field = format!("{path}.recipients");
    if recipients.len() > MAX_RECIPIENTS {
        v.add(
            &field,
            format!(
                "at most {MAX_RECIPIENTS} recipients, not {}",
                recipients.len()
            ),
        );
    }
    if recipients.is_empty() && !matches!(tlp, Tlp::Clear | Tlp::Green | Tlp::Unspecified) {
        v.add(
            &field,
            format!(
                "at least one recipient is required for {}; only TLP_CLEAR and TLP_GREEN may be broadcast",
                tlp.as_str_name()
            ),
        );
    }
    for (i, r) in recipients.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if let Err(e) = vocab::participant_address(r) {
            v.add(field, e);
        } else if r == sender {
            v.add(field, "the sender cannot be a recipient");
        } else if recipients[..i].contains(r) {
            v.add(field, format!("{r:?} is listed twice"));
        }
    }
}

fn check_ref(r: &pb::MessageRef, path: &str, v: &mut Violations) {
    if let Err(e) = vocab::participant_address(&r.sender) {
        v.add(format!("{path}.sender"), e);
    }
    if let Err(e) = vocab::message_id(&r.id) {
        v.add(format!("{path}.id"), e);
    }
}
