//! The messages the gateway raises itself, built here from the message that raises them:
//! a listing alert for a platform from a seizure notification that concerns its listing, and
//! a seller match from a seller flag or seizure whose seller was seen before. Which platform
//! and which readers is decided by the application ([`crate::app`]), which knows the
//! registry, the policy and the store; what a derived message says is decided here, and it
//! says the same every time it is raised from the same message, so that raising it again
//! (a resubmission, a retry) finds it stored and stores nothing twice.
//!
//! A derived message is an envelope like any other: numbered, placed in inboxes, audited and
//! replayed as one. Its id begins with [`DERIVED_ID_PREFIX`], which submitted ids may not, and
//! its TLP is never below AMBER ([`derived_tlp`]): it goes to its named recipients only.

use super::envelope::DERIVED_ID_PREFIX;
use crate::pb::limits::MAX_REFS;
use crate::pb::{self, envelope::Payload, Kind, Tlp};
use sha2::{Digest, Sha256};

/// The id of the forwarding report on message `seq` of this gateway, for peer `gateway`.
pub fn forwarding_report_id(gateway: &str, seq: u64) -> String {
    derived_id("forwarded", &[gateway, &seq.to_string()])
}

/// The forwarding report for `original` (stored here as `seq`) raised by this gateway
/// (`gateway_id`) for its sender: what peer `report.gateway` answered.
pub fn forwarding_report(
    gateway_id: &str,
    original: &pb::Envelope,
    seq: u64,
    report: pb::ForwardingReport,
) -> pb::Envelope {
    let original_ref = pb::MessageRef {
        sender: original.sender.clone(),
        id: original.id.clone(),
    };
    pb::Envelope {
        id: forwarding_report_id(&report.gateway, seq),
        kind: Kind::ForwardingReport as i32,
        schema_version: original.schema_version,
        created_at: original.created_at,
        sender: gateway_id.to_string(),
        recipients: vec![original.sender.clone()],
        tlp: derived_tlp([original.tlp]),
        territorial_scope: original.territorial_scope.clone(),
        refs: vec![original_ref.clone()],
        supersedes: None,
        signature: String::new(),
        payload: Some(Payload::ForwardingReport(pb::ForwardingReport {
            message: Some(original_ref),
            ..report
        })),
    }
}

/// The TLP of a derived message: the most restrictive of those of the messages it tells of,
/// and at least AMBER.
pub fn derived_tlp(tlps: impl IntoIterator<Item = i32>) -> i32 {
    tlps.into_iter().fold(Tlp::Amber as i32, i32::max)
}

/// The id of a derived message of `kind` raised from `parts`: readable
/// (`ipex:alert:market-a:seiz-2026-0001`) when it fits the 128 characters of a message id,
/// otherwise the same prefix and a digest of the parts.
fn derived_id(kind: &str, parts: &[&str]) -> String {
    let readable = format!("{DERIVED_ID_PREFIX}{kind}:{}", parts.join(":"));
    if readable.len() <= 128 {
        return readable;
    }
    let digest = Sha256::digest(parts.join("\0").as_bytes());
    format!("{DERIVED_ID_PREFIX}{kind}:{}", &hex::encode(digest)[..40])
}

/// Why a platform gets a listing alert, and what of the seizure is its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertTarget {
    /// The platform.
    pub platform: String,
    /// Why.
    pub reason: pb::AlertReason,
    /// The seizure's listing URLs on the platform's hosts.
    pub listing_urls: Vec<String>,
    /// Whether the seizure's seller id and listing id are the platform's: the seizure names
    /// it. (A seizure naming another platform, or one not registered, with a listing URL on
    /// this platform's hosts, may have named the seller on that other platform.)
    pub owns_seller_id: bool,
}

/// The listing alert `seizure` (an envelope holding a seizure notification, sender set)
/// raises for `target`: addressed to the platform alone, sent in the seizing
/// administration's name so that the platform's outcome answers it, the seizure its first
/// ref. `None` when the envelope holds no seizure notification.
pub fn listing_alert(seizure: &pb::Envelope, target: &AlertTarget) -> Option<pb::Envelope> {
    let Some(Payload::SeizureNotification(s)) = &seizure.payload else {
        return None;
    };
    let seller = s.seller.clone().unwrap_or_default();
    let own = |value: &str| {
        if target.owns_seller_id {
            value.to_string()
        } else {
            String::new()
        }
    };
    let alert = pb::ListingAlert {
        reason: target.reason as i32,
        case_reference: s.case_reference.clone(),
        seizure_date: s.seizure_date.clone(),
        seizure_country: s
            .location
            .as_ref()
            .map(|l| l.country.clone())
            .unwrap_or_default(),
        listing_urls: target.listing_urls.clone(),
        listing_id: own(&seller.listing_id),
        seller_id: own(&seller.seller_id),
        seller_pseudonym: seller.seller_pseudonym.clone(),
        items: s
            .items
            .iter()
            .map(|item| pb::AlertItem {
                hs_code: item.hs_code.clone(),
                description: item.description.clone(),
                brand: item.brand.clone(),
                quantity: item.quantity.clone(),
                ip_right_type: item.ip_right_type,
            })
            .collect(),
    };
    Some(pb::Envelope {
        id: derived_id("alert", &[&target.platform, &seizure.id]),
        kind: Kind::ListingAlert as i32,
        schema_version: seizure.schema_version,
        created_at: seizure.created_at,
        sender: seizure.sender.clone(),
        recipients: vec![target.platform.clone()],
        tlp: derived_tlp([seizure.tlp]),
        territorial_scope: seizure.territorial_scope.clone(),
        refs: vec![pb::MessageRef {
            sender: seizure.sender.clone(),
            id: seizure.id.clone(),
        }],
        supersedes: None,
        // Raised by the gateway, in the administration's name but not with its key: unsigned.
        signature: String::new(),
        payload: Some(Payload::ListingAlert(alert)),
    })
}

/// One way a message names its seller, for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellerKey {
    /// A pseudonym or a platform seller id.
    pub basis: pb::MatchBasis,
    /// The pseudonym (lower-case hex) or the seller id.
    pub value: String,
    /// The platform the seller is on (a seller id means something on its platform only).
    pub platform: String,
}

impl SellerKey {
    /// Do `self` and `other` name the same seller? Equal pseudonyms do wherever they were
    /// seen; equal seller ids only on the same platform.
    pub fn same_seller(&self, other: &SellerKey) -> bool {
        self.basis == other.basis
            && self.value == other.value
            && (self.basis == pb::MatchBasis::Pseudonym || self.platform == other.platform)
    }
}

/// The seller keys of a stored seller flag or seizure notification (none for other kinds):
/// the pseudonyms and the platform seller id of a flag (on the flagging platform), the
/// pseudonym and the seller id of a seizure's seller reference (on its platform).
pub fn seller_keys(envelope: &pb::Envelope) -> Vec<SellerKey> {
    let key = |basis, value: &str, platform: &str| SellerKey {
        basis,
        value: value.trim().to_ascii_lowercase(),
        platform: platform.to_string(),
    };
    let mut keys = Vec::new();
    match &envelope.payload {
        Some(Payload::SellerFlag(flag)) => {
            for p in &flag.pseudonyms {
                keys.push(key(
                    pb::MatchBasis::Pseudonym,
                    &p.hmac_sha256,
                    &envelope.sender,
                ));
            }
            keys.push(SellerKey {
                basis: pb::MatchBasis::SellerId,
                value: flag.platform_seller_id.trim().to_string(),
                platform: envelope.sender.clone(),
            });
        }
        Some(Payload::SeizureNotification(s)) => {
            if let Some(seller) = &s.seller {
                keys.push(key(
                    pb::MatchBasis::Pseudonym,
                    &seller.seller_pseudonym,
                    &seller.platform,
                ));
                if !seller.platform.is_empty() {
                    keys.push(SellerKey {
                        basis: pb::MatchBasis::SellerId,
                        value: seller.seller_id.trim().to_string(),
                        platform: seller.platform.clone(),
                    });
                }
            }
        }
        _ => {}
    }
    keys.retain(|k| !k.value.is_empty());
    keys.dedup();
    keys
}

/// What `new` and `earlier` (stored before it) share that names the same seller (as `earlier`
/// has it, with its platform), if they are
/// worth telling of together: they come from two senders (a seizure and a platform's flag,
/// two platforms' flags, two administrations' seizures). What one sender said twice about a
/// seller is its own business.
pub fn seller_in_common(new: &pb::Envelope, earlier: &pb::Envelope) -> Option<SellerKey> {
    if new.sender == earlier.sender {
        return None;
    }
    let mine = seller_keys(new);
    seller_keys(earlier)
        .into_iter()
        .find(|theirs| mine.iter().any(|m| m.same_seller(theirs)))
}

/// The seller match of `new` (sender set) raised by `gateway` for `recipients`, naming
/// `matches` (newest first; at most as many as refs allow). The TLP is the strictest of the
/// messages it names, at least AMBER. Its id ends in a digest of its recipients, which tells
/// a reader nothing of the matches other readers got.
pub fn seller_match(
    gateway: &str,
    new: &pb::Envelope,
    recipients: Vec<String>,
    matches: Vec<(pb::MatchedMessage, i32)>,
) -> pb::Envelope {
    let matches: Vec<_> = matches.into_iter().take(MAX_REFS - 1).collect();
    let tlp = derived_tlp(std::iter::once(new.tlp).chain(matches.iter().map(|(_, tlp)| *tlp)));
    let new_ref = pb::MessageRef {
        sender: new.sender.clone(),
        id: new.id.clone(),
    };
    let mut refs = vec![new_ref.clone()];
    refs.extend(matches.iter().filter_map(|(m, _)| m.r#ref.clone()));
    pb::Envelope {
        id: derived_id(
            "match",
            &[
                &new.sender,
                &new.id,
                &hex::encode(Sha256::digest(recipients.join("\0").as_bytes()))[..12],
            ],
        ),
        kind: Kind::SellerMatch as i32,
        schema_version: new.schema_version,
        created_at: new.created_at,
        sender: gateway.to_string(),
        recipients,
        tlp,
        territorial_scope: new.territorial_scope.clone(),
        refs,
        supersedes: None,
        signature: String::new(),
        payload: Some(Payload::SellerMatch(pb::SellerMatch {
            message: Some(new_ref),
            kind: new.kind,
            matches: matches.into_iter().map(|(m, _)| m).collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seizure(tlp: Tlp) -> pb::Envelope {
        pb::Envelope {
            id: "seiz-1".into(),
            kind: Kind::SeizureNotification as i32,
            schema_version: 1,
            sender: "customs-nl".into(),
            tlp: tlp as i32,
            payload: Some(Payload::SeizureNotification(pb::SeizureNotification {
                case_reference: "NL-1".into(),
                seller: Some(pb::SellerRef {
                    platform: "market-a".into(),
                    seller_id: "S-1".into(),
                    seller_pseudonym: "AB".repeat(32),
                    listing_url: "https://market-a.example/l/1".into(),
                    listing_id: "1".into(),
                }),
                items: vec![pb::SeizedItem {
                    hs_code: "640399".into(),
                    brand: "Acme".into(),
                    declared_value: Some(pb::Money {
                        currency: "EUR".into(),
                        amount: "1.00".into(),
                    }),
                    right_holder: "brand-c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn flag(platform: &str, pseudonym: &str, seller_id: &str) -> pb::Envelope {
        pb::Envelope {
            id: "flag-1".into(),
            sender: platform.into(),
            kind: Kind::SellerFlag as i32,
            payload: Some(Payload::SellerFlag(pb::SellerFlag {
                platform_seller_id: seller_id.into(),
                pseudonyms: vec![pb::SellerPseudonym {
                    r#type: pb::PseudonymType::Email as i32,
                    hmac_sha256: pseudonym.into(),
                    key_id: String::new(),
                }],
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// An alert carries what the platform needs and nothing of the seizure's values or right
    /// holders; it is never less restricted than the seizure, and the same every time.
    #[test]
    fn listing_alerts_carry_what_the_platform_needs() {
        let target = AlertTarget {
            platform: "market-a".into(),
            reason: pb::AlertReason::PlatformNamed,
            listing_urls: vec!["https://market-a.example/l/1".into()],
            owns_seller_id: true,
        };
        let alert = listing_alert(&seizure(Tlp::Green), &target).unwrap();
        assert_eq!(alert.id, "ipex:alert:market-a:seiz-1");
        assert_eq!(alert.sender, "customs-nl");
        assert_eq!(alert.recipients, ["market-a"]);
        assert_eq!(alert.tlp, Tlp::Amber as i32);
        assert_eq!(alert.refs[0].id, "seiz-1");
        let Some(Payload::ListingAlert(a)) = &alert.payload else {
            panic!("not an alert")
        };
        assert_eq!(a.seller_id, "S-1");
        assert_eq!(a.items[0].brand, "Acme");
        assert_eq!(listing_alert(&seizure(Tlp::Green), &target), Some(alert));
        let red = listing_alert(&seizure(Tlp::Red), &target).unwrap();
        assert_eq!(red.tlp, Tlp::Red as i32);
        let foreign = AlertTarget {
            owns_seller_id: false,
            ..target
        };
        let Some(Payload::ListingAlert(a)) = listing_alert(&seizure(Tlp::Green), &foreign)
            .unwrap()
            .payload
        else {
            panic!("not an alert")
        };
        assert_eq!((a.seller_id.as_str(), a.listing_id.as_str()), ("", ""));
    }

    /// Ids stay within 128 characters and never collide with a submitted id.
    #[test]
    fn derived_ids_are_bounded_and_reserved() {
        let long = "x".repeat(128);
        let id = derived_id("alert", &["market-a", &long]);
        assert!(id.len() <= 128 && id.starts_with(DERIVED_ID_PREFIX), "{id}");
        assert_ne!(id, derived_id("alert", &["market-b", &long]));
        assert!(crate::domain::vocab::message_id(&id).is_ok());
    }

    /// Pseudonyms match across platforms and seizures; seller ids only on one platform; two
    /// messages of one sender never.
    #[test]
    fn sellers_in_common() {
        let p = "ab".repeat(32);
        let s = seizure(Tlp::Green);
        let a = flag("market-a", &p, "S-1");
        let b = flag("market-b", &p.to_uppercase(), "S-9");
        assert_eq!(
            seller_in_common(&b, &s).map(|k| k.basis),
            Some(pb::MatchBasis::Pseudonym)
        );
        assert_eq!(
            seller_in_common(&b, &a).map(|k| k.basis),
            Some(pb::MatchBasis::Pseudonym)
        );
        assert_eq!(seller_in_common(&a, &flag("market-a", &p, "S-1")), None);
        let mut again = seizure(Tlp::Green);
        again.id = "seiz-2".into();
        assert_eq!(seller_in_common(&again, &s), None);
        again.sender = "customs-fr".into();
        assert!(seller_in_common(&again, &s).is_some());
        let other = "cd".repeat(32);
        assert_eq!(
            seller_in_common(&flag("market-a", &other, "S-1"), &s).map(|k| k.basis),
            Some(pb::MatchBasis::SellerId)
        );
        assert_eq!(
            seller_in_common(&flag("market-b", &other, "S-1"), &s),
            None,
            "a seller id means something on its own platform only"
        );
    }
}
