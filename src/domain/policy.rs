//! Who may send what to whom, and who may read what. Authorization is a pure function of the
//! policy table, the participants and the message: it returns a permit or a typed denial whose
//! message names the rule, so a refused caller learns exactly what is not allowed.

use super::participant::{Participant, Role};
use crate::pb::{Kind, Tlp};
use serde::{Deserialize, Serialize};

/// One rule: participants of role `from` may send `kind` to participants of roles `to`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The sender's role.
    pub from: Role,
    /// The message kind, e.g. `SEIZURE_NOTIFICATION`.
    #[serde(deserialize_with = "de_kind", serialize_with = "ser_kind")]
    pub kind: Kind,
    /// Roles that may receive it.
    pub to: Vec<Role>,
}

fn ser_kind<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind_name(*kind))
}

fn de_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
    let name = String::deserialize(d)?;
    kind_from_name(&name).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown message kind {name:?}; expected one of TAKEDOWN_NOTICE, TAKEDOWN_OUTCOME, \
             SELLER_FLAG, SEIZURE_NOTIFICATION, SHIPMENT_ALERT, DATA_REQUEST, DATA_RESPONSE"
        ))
    })
}

/// Parses a kind name with or without its `KIND_` prefix, in any case
/// (`seizure_notification`, `KIND_SEIZURE_NOTIFICATION`, `seizure-notification`).
pub fn kind_from_name(name: &str) -> Option<Kind> {
    let upper = name.trim().to_ascii_uppercase().replace('-', "_");
    // Short names people use.
    let upper = match upper.as_str() {
        "SEIZURE" => "SEIZURE_NOTIFICATION".to_string(),
        "NOTICE" | "TAKEDOWN" => "TAKEDOWN_NOTICE".to_string(),
        "OUTCOME" => "TAKEDOWN_OUTCOME".to_string(),
        "FLAG" => "SELLER_FLAG".to_string(),
        "ALERT" => "SHIPMENT_ALERT".to_string(),
        "REQUEST" => "DATA_REQUEST".to_string(),
        "RESPONSE" => "DATA_RESPONSE".to_string(),
        _ => upper,
    };
    let full = if upper.starts_with("KIND_") {
        upper
    } else {
        format!("KIND_{upper}")
    };
    Kind::from_str_name(&full).filter(|k| *k != Kind::Unspecified)
}

/// The short name of a kind, e.g. `SEIZURE_NOTIFICATION`.
pub fn kind_name(kind: Kind) -> &'static str {
    let full = kind.as_str_name();
    full.strip_prefix("KIND_").unwrap_or(full)
}

/// The policy table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The rules; a (from, kind) pair appears at most once.
    rules: Vec<Rule>,
}

/// Why a message may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No rule lets this role send this kind.
    #[error("policy: a {role} participant may not send {kind}")]
    KindNotAllowed {
        /// The sender's role.
        role: Role,
        /// The kind.
        kind: &'static str,
    },
    /// The rule exists but does not include the recipient's role.
    #[error(
        "policy: {kind} from {from} may go to {allowed}, not to {recipient} ({recipient_role})"
    )]
    RecipientNotAllowed {
        /// The sender's role.
        from: Role,
        /// The kind.
        kind: &'static str,
        /// Roles the rule allows, comma separated.
        allowed: String,
        /// The refused recipient.
        recipient: String,
        /// Its role.
        recipient_role: Role,
    },
}

impl Default for Policy {
    /// The table of DESIGN.md "Who uses it".
    fn default() -> Policy {
        use Role::*;
        let rule = |from, kind, to: &[Role]| Rule {
            from,
            kind,
            to: to.to_vec(),
        };
        Policy {
            rules: vec![
                rule(Customs, Kind::TakedownNotice, &[Platform]),
                rule(
                    Customs,
                    Kind::SeizureNotification,
                    &[Customs, Platform, Carrier, RightHolder, Partner],
                ),
                rule(Customs, Kind::DataRequest, &[Platform, Carrier]),
                rule(Platform, Kind::SellerFlag, &[Customs]),
                rule(Platform, Kind::TakedownOutcome, &[Customs, RightHolder]),
                rule(Platform, Kind::DataResponse, &[Customs]),
                rule(Carrier, Kind::ShipmentAlert, &[Customs]),
                rule(Carrier, Kind::DataResponse, &[Customs]),
                rule(RightHolder, Kind::TakedownNotice, &[Platform]),
            ],
        }
    }
}

impl Policy {
    /// Builds a policy from rules, refusing a (from, kind) pair given twice.
    pub fn new(rules: Vec<Rule>) -> Result<Policy, String> {
        for (i, rule) in rules.iter().enumerate() {
            if matches!(
                rule.kind,
                Kind::ListingAlert | Kind::SellerMatch | Kind::ForwardingReport
            ) {
                return Err(format!(
                    "policy.rules[{i}]: {} is raised by the gateway; no participant may send it",
                    kind_name(rule.kind)
                ));
            }
            if rules[..i]
                .iter()
                .any(|r| r.from == rule.from && r.kind == rule.kind)
            {
                return Err(format!(
                    "policy.rules[{i}]: a rule for {} sending {} is already given",
                    rule.from,
                    kind_name(rule.kind)
                ));
            }
        }
        Ok(Policy { rules })
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn rule(&self, from: Role, kind: Kind) -> Option<&Rule> {
        self.rules.iter().find(|r| r.from == from && r.kind == kind)
    }

    /// May a `from` participant send `kind` at all?
    pub fn may_send_kind(&self, from: Role, kind: Kind) -> Result<(), Denial> {
        self.rule(from, kind)
            .map(|_| ())
            .ok_or(Denial::KindNotAllowed {
                role: from,
                kind: kind_name(kind),
            })
    }

    /// May `sender` send `kind` to each of `recipients`?
    pub fn authorize_send(
        &self,
        sender: &Participant,
        kind: Kind,
        recipients: &[&Participant],
    ) -> Result<(), Denial> {
        let rule = self.rule(sender.role, kind).ok_or(Denial::KindNotAllowed {
            role: sender.role,
            kind: kind_name(kind),
        })?;
        for recipient in recipients {
            if !rule.to.contains(&recipient.role) {
                return Err(Denial::RecipientNotAllowed {
                    from: sender.role,
                    kind: kind_name(kind),
                    allowed: rule
                        .to
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    recipient: recipient.id.clone(),
                    recipient_role: recipient.role,
                });
            }
        }
        Ok(())
    }

    /// May a participant of role `to` receive `kind` from a participant of role `from`?
    pub fn may_receive(&self, from: Role, kind: Kind, to: Role) -> bool {
        self.rule(from, kind).is_some_and(|r| r.to.contains(&to))
    }

    /// May `reader` read a message? The sender and the named recipients always may; for TLP
    /// GREEN and CLEAR, so may every participant the policy lets receive the kind from the
    /// sender's role (`sender_role` is `None` when the sender left the registry).
    pub fn may_read(
        &self,
        reader: &Participant,
        sender: &str,
        sender_role: Option<Role>,
        recipients: &[String],
        kind: Kind,
        tlp: Tlp,
    ) -> bool {
        if reader.id == sender || recipients.contains(&reader.id) {
            return true;
        }
        match tlp {
            Tlp::Clear | Tlp::Green => {
                sender_role.is_some_and(|from| self.may_receive(from, kind, reader.role))
            }
            Tlp::Amber | Tlp::AmberStrict | Tlp::Red | Tlp::Unspecified => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(id: &str, role: Role) -> Participant {
        Participant {
            id: id.into(),
            role,
            country: String::new(),
            ..Participant::default()
        }
    }

    #[test]
    fn default_table_follows_the_design() {
        let p = Policy::default();
        let customs = participant("customs-nl", Role::Customs);
        let market = participant("market-a", Role::Platform);
        let partner = participant("rilo-we", Role::Partner);
        assert!(p
            .authorize_send(&customs, Kind::TakedownNotice, &[&market])
            .is_ok());
        assert!(p
            .authorize_send(&customs, Kind::SeizureNotification, &[&partner])
            .is_ok());
        assert_eq!(
            p.authorize_send(&market, Kind::SeizureNotification, &[&customs]),
            Err(Denial::KindNotAllowed {
                role: Role::Platform,
                kind: "SEIZURE_NOTIFICATION"
            })
        );
        let err = p
            .authorize_send(&customs, Kind::TakedownNotice, &[&partner])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy: TAKEDOWN_NOTICE from CUSTOMS may go to PLATFORM, not to rilo-we (PARTNER)"
        );
        assert!(p.may_send_kind(partner.role, Kind::SellerFlag).is_err());
    }

    #[test]
    fn tlp_decides_who_reads() {
        let p = Policy::default();
        let partner = participant("rilo-we", Role::Partner);
        let recipients = vec!["customs-fr".to_string()];
        for (tlp, expected) in [
            (Tlp::Clear, true),
            (Tlp::Green, true),
            (Tlp::Amber, false),
            (Tlp::AmberStrict, false),
            (Tlp::Red, false),
        ] {
            assert_eq!(
                p.may_read(
                    &partner,
                    "customs-nl",
                    Some(Role::Customs),
                    &recipients,
                    Kind::SeizureNotification,
                    tlp
                ),
                expected,
                "{tlp:?}"
            );
        }
        // GREEN does not open a kind the policy does not let the reader receive.
        assert!(!p.may_read(
            &partner,
            "market-a",
            Some(Role::Platform),
            &[],
            Kind::SellerFlag,
            Tlp::Green
        ));
    }

    #[test]
    fn kind_names_parse_loosely() {
        assert_eq!(
            kind_from_name("seizure-notification"),
            Some(Kind::SeizureNotification)
        );
        assert_eq!(kind_from_name("KIND_SELLER_FLAG"), Some(Kind::SellerFlag));
        assert_eq!(kind_from_name("seizure"), Some(Kind::SeizureNotification));
        assert_eq!(kind_from_name("unspecified"), None);
        assert_eq!(kind_from_name("parcel"), None);
    }
}
