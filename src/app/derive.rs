//! What the gateway raises from the messages it is about to store, in the same commit:
//!
//! - a **listing alert** for each platform a seizure notification concerns — the one its
//!   seller reference names, and the one on whose hosts (registry `domains`) its listing URL
//!   lies — when the seizing administration lets the platform learn of it: the policy lets
//!   platforms receive its seizures, it has not opted out (`listing_alerts = false`), and the
//!   platform may read the seizure (it is CLEAR or GREEN, or the platform is a recipient): an
//!   alert tells a platform nothing it could not read;
//! - a **seller match** when a new seller flag or seizure names a seller (by pseudonym, or by
//!   seller id on one platform) that an earlier seizure or flag of another sender named:
//!   addressed to every customs administration, and to the new message's sender, that may
//!   read the new message and at least one earlier one, naming only the earlier ones each
//!   reader may read. Earlier messages are found through the seller postings written with
//!   each message, the newest [`MATCH_LOOKUP`] per seller key: no scan. Only what came after
//!   the sender's own last message about the seller is named: what came before, the match
//!   that message raised named already. A sender reporting one seller again and again raises
//!   a match only when another sender has spoken of the seller since.
//!
//! What a derived message says is built in [`crate::domain::derived`]; here is who gets one.
//! A message already stored (a resubmission) raises nothing again: the committer stores what
//! is raised from a message only with the message (`NewMessage::derived_from`).

use super::error::Error;
use super::submit::new_message;
use super::{readable_by, tlp_allows, Gateway};
use crate::auth::registry::Registry;
use crate::domain::derived::{self, AlertTarget};
use crate::domain::facets::Facet;
use crate::domain::participant::{Participant, Role};
use crate::domain::policy::Policy;
use crate::pb::{self, envelope::Payload, Kind, Tlp};
use crate::storage::{Live, NewMessage};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Postings read per seller key when matching: the newest.
pub const MATCH_LOOKUP: usize = 16;

impl Gateway {
    /// The messages `messages` (validated, about to be committed) raise.
    pub(super) async fn derive(
        &self,
        messages: &[NewMessage],
        registry: &Registry,
        policy: &Policy,
        config: &crate::ops::config::Config,
    ) -> Result<Vec<NewMessage>, Error> {
        let (gateway, matching) = (config.gateway_id.as_str(), config.matching.enabled);
        let concerned =
            |m: &&NewMessage| matches!(m.kind, Kind::SeizureNotification | Kind::SellerFlag);
        if !messages.iter().any(|m| concerned(&m)) {
            return Ok(Vec::new());
        }
        // Matching reads the seller postings: they must hold every message answered before.
        if matching
            && messages
                .iter()
                .any(|m| !derived::seller_keys(&m.envelope).is_empty())
        {
            self.store.settled().await?;
        }
        let mut raised = Vec::new();
        for (source, m) in messages.iter().enumerate().filter(|(_, m)| concerned(m)) {
            for alert in listing_alerts(&m.envelope, registry, policy) {
                let to = alert.recipients.clone();
                raised.push(new_message(alert, Kind::ListingAlert, to, Some(source)));
            }
            if !matching {
                continue;
            }
            for found in self.seller_matches(m, registry, policy, gateway)? {
                let to = found.recipients.clone();
                raised.push(new_message(found, Kind::SellerMatch, to, Some(source)));
            }
        }
        Ok(raised)
    }

    /// The seller matches `new` raises: one per set of earlier messages, for the readers that
    /// may read exactly that set.
    fn seller_matches(
        &self,
        new: &NewMessage,
        registry: &Registry,
        policy: &Policy,
        gateway: &str,
    ) -> Result<Vec<pb::Envelope>, Error> {
        // Messages looked at, loaded once; and those found to be matches.
        let mut loaded: HashMap<u64, Arc<Live>> = HashMap::new();
        let mut named = std::collections::HashSet::new();
        let mut earlier: Vec<(Arc<Live>, derived::SellerKey)> = Vec::new();
        for key in derived::seller_keys(&new.envelope) {
            let values = [key.value.clone()];
            let seqs = self.store.postings(
                Some((Facet::Seller, &values)),
                1,
                u64::MAX,
                MATCH_LOOKUP,
                false,
            )?;
            // Newest first. What came before the sender's own last message about this seller
            // was looked up when that message came (and named then to whoever could read
            // both): only what is newer is news.
            for seq in seqs {
                let stored = match loaded.get(&seq) {
                    Some(stored) => stored.clone(),
                    None => {
                        let Some(stored) = self.store.shared(seq)? else {
                            continue;
                        };
                        loaded.insert(seq, stored.clone());
                        stored
                    }
                };
                let own = stored.envelope.sender == new.sender
                    && derived::seller_keys(&stored.envelope)
                        .iter()
                        .any(|k| k.same_seller(&key));
                if own {
                    break;
                }
                let kind = stored.envelope.kind;
                let matchable =
                    kind == Kind::SellerFlag as i32 || kind == Kind::SeizureNotification as i32;
                if matchable && !named.contains(&seq) {
                    if let Some(shared) = derived::seller_in_common(&new.envelope, &stored.envelope)
                    {
                        named.insert(seq);
                        earlier.push((stored, shared));
                    }
                }
            }
        }
        if earlier.is_empty() {
            return Ok(Vec::new());
        }
        earlier.sort_by_key(|(m, _)| std::cmp::Reverse(m.receipt.seq));
        // Who may read the new message and which of the earlier ones; readers of the same
        // set share one match.
        // A flagging platform gets a match of its own: it learns nothing of who else is told.
        let mut groups: BTreeMap<(bool, Vec<usize>), Vec<String>> = BTreeMap::new();
        let readers = registry
            .iter()
            .filter(|p| p.role == Role::Customs || p.id == new.sender);
        for reader in readers {
            if !reads_new(reader, new, registry, policy) {
                continue;
            }
            let linked: Vec<usize> = earlier
                .iter()
                .enumerate()
                .filter(|(_, (m, _))| {
                    readable_by(reader, &m.envelope, &m.receipt, registry, policy)
                })
                .map(|(i, _)| i)
                .collect();
            if !linked.is_empty() {
                let alone = reader.role != Role::Customs;
                groups
                    .entry((alone, linked))
                    .or_default()
                    .push(reader.id.clone());
            }
        }
        Ok(groups
            .into_iter()
            .map(|((_, linked), readers)| {
                let matches = linked
                    .iter()
                    .map(|&i| {
                        let (m, key) = &earlier[i];
                        (
                            pb::MatchedMessage {
                                r#ref: Some(pb::MessageRef {
                                    sender: m.envelope.sender.clone(),
                                    id: m.envelope.id.clone(),
                                }),
                                seq: m.receipt.seq,
                                kind: m.envelope.kind,
                                basis: key.basis as i32,
                                value: key.value.clone(),
                                platform: key.platform.clone(),
                            },
                            m.envelope.tlp,
                        )
                    })
                    .collect();
                derived::seller_match(gateway, &new.envelope, readers, matches)
            })
            .collect())
    }
}

/// May `reader` read `new`, about to be stored for the inboxes of `new.deliver_to`?
fn reads_new(reader: &Participant, new: &NewMessage, registry: &Registry, policy: &Policy) -> bool {
    reader.id == new.sender
        || new.deliver_to.contains(&reader.id)
        || tlp_allows(reader, &new.envelope, registry, policy)
}

/// The listing alerts `seizure` (validated, sender set) raises.
fn listing_alerts(
    seizure: &pb::Envelope,
    registry: &Registry,
    policy: &Policy,
) -> Vec<pb::Envelope> {
    let Some(Payload::SeizureNotification(notification)) = &seizure.payload else {
        return Vec::new();
    };
    let Some(seller) = &notification.seller else {
        return Vec::new();
    };
    let Some(customs) = registry.get(&seizure.sender) else {
        return Vec::new();
    };
    if customs.listing_alerts == Some(false)
        || !policy.may_receive(customs.role, Kind::SeizureNotification, Role::Platform)
    {
        return Vec::new();
    }
    let on_hosts = (!seller.listing_url.is_empty())
        .then(|| registry.platform_of_url(&seller.listing_url))
        .flatten();
    let mut targets = Vec::new();
    if let Some(named) = registry
        .get(&seller.platform)
        .filter(|p| p.role == Role::Platform)
    {
        targets.push(AlertTarget {
            platform: named.id.clone(),
            reason: pb::AlertReason::PlatformNamed,
            listing_urls: on_hosts
                .filter(|p| p.id == named.id)
                .map(|_| vec![seller.listing_url.clone()])
                .unwrap_or_default(),
            owns_seller_id: true,
        });
    }
    if let Some(host) = on_hosts.filter(|p| p.id != seller.platform) {
        targets.push(AlertTarget {
            platform: host.id.clone(),
            reason: pb::AlertReason::ListingHost,
            listing_urls: vec![seller.listing_url.clone()],
            owns_seller_id: false,
        });
    }
    // Only a platform that may read the seizure learns of it: the alert tells it nothing it
    // could not read, and points at a message it can fetch.
    let tlp = Tlp::try_from(seizure.tlp).unwrap_or(Tlp::Unspecified);
    targets
        .into_iter()
        .filter(|t| {
            matches!(tlp, Tlp::Clear | Tlp::Green) || seizure.recipients.contains(&t.platform)
        })
        .filter_map(|t| derived::listing_alert(seizure, &t))
        .collect()
}
