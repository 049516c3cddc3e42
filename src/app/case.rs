//! `GetCase`: everything the caller may read that is linked to one message, as one thread.
//!
//! From the message asked for, links are followed breadth first, [`MAX_DEPTH`] steps at most,
//! through the postings written with every message: the messages it refs and those that ref
//! it (answers, listing alerts, seller matches, linked seizures), and those sharing a seller
//! (pseudonym, or seller id on the same platform), a listing (URL or id), a parcel (tracking
//! number) or a customs case reference. Each look-up reads the newest [`LOOKUP`] postings of
//! one of at most [`VALUES`] values per facet, and a thread reads at most ten postings per
//! message it may hold (at least 1000) in all, then says it is `truncated`: no scan. Links are followed only through messages the caller may read, so a thread never
//! shows that a hidden message exists; and the whole thread is recorded as one read.

use super::error::Error;
use super::{view, Gateway};
use crate::auth::identity::Caller;
use crate::domain::facets::{Facet, Facets};
use crate::domain::Violations;
use crate::pb;
use crate::storage::Live;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Messages a thread holds when the request does not say.
pub const DEFAULT_CASE: u32 = 100;
/// Most messages a thread may hold.
pub const MAX_CASE: u32 = 500;
/// Steps from the first message a thread follows.
pub const MAX_DEPTH: usize = 3;
/// Postings read per value looked up: the newest.
pub const LOOKUP: usize = 50;
/// Links listed per message.
const MAX_LINKS: usize = 8;
/// Values of one facet of a message followed (a flag may list a hundred listing URLs).
pub const VALUES: usize = 20;

/// The facets a thread follows, and the reason each gives.
const FOLLOWED: [(Facet, pb::LinkReason); 6] = [
    (Facet::Seller, pb::LinkReason::Seller),
    (Facet::Url, pb::LinkReason::Listing),
    (Facet::Listing, pb::LinkReason::Listing),
    (Facet::Tracking, pb::LinkReason::Tracking),
    (Facet::Case, pb::LinkReason::CaseReference),
    (Facet::Ref, pb::LinkReason::Ref),
];

/// A message of the thread being built.
struct Entry {
    message: Arc<Live>,
    links: Vec<pb::CaseLink>,
    depth: usize,
}

impl Gateway {
    /// The case thread of the message `request` names, as the caller may read it.
    pub async fn case(
        &self,
        caller: &Caller,
        request: pb::GetCaseRequest,
    ) -> Result<pb::GetCaseResponse, Error> {
        let mut v = Violations::default();
        let limit = super::page_limit(request.limit, DEFAULT_CASE, MAX_CASE, &mut v);
        let Some(start) = request.message else {
            v.add("message", "is required: the sender and id of a message");
            return Err(v.into());
        };
        if !v.is_empty() {
            return Err(v.into());
        }
        self.store.settled().await?;
        let answer = || {
            Error::NotFound(format!(
                "no message {:?} from {} is stored that {} may read",
                start.id,
                start.sender,
                caller.id()
            ))
        };
        let Some(seq) = self.store.seq_of(&start.sender, &start.id)? else {
            return Err(answer());
        };
        let Some(first) = self.store.shared(seq)? else {
            return Err(answer());
        };
        if !self.may_read_parts(caller, &first.envelope, &first.receipt) {
            return Err(Error::Hidden {
                answer: answer().to_string(),
                withheld: format!(
                    "tlp: message {:?} from {} is not for the reader",
                    start.id, start.sender
                ),
            });
        }

        let mut thread: HashMap<u64, Entry> = HashMap::new();
        // Messages looked at that the caller may not read: neither shown nor followed.
        let mut hidden = std::collections::HashSet::new();
        let mut queue = VecDeque::from([seq]);
        thread.insert(
            seq,
            Entry {
                message: first,
                links: vec![pb::CaseLink {
                    reason: pb::LinkReason::Start as i32,
                    via_seq: 0,
                    value: String::new(),
                }],
                depth: 0,
            },
        );
        let mut truncated = false;
        // Postings a thread may read in all, whatever the messages hold.
        let mut budget = limit.saturating_mul(10).max(1000);
        'walk: while let Some(at) = queue.pop_front() {
            let (message, depth) = {
                let entry = &thread[&at];
                (entry.message.clone(), entry.depth)
            };
            if depth >= MAX_DEPTH {
                continue;
            }
            if budget == 0 {
                truncated = true;
                break;
            }
            for (found, reason, value) in self.linked(&message, &mut budget)? {
                if found == at || hidden.contains(&found) {
                    continue;
                }
                let link = pb::CaseLink {
                    reason: reason as i32,
                    via_seq: at,
                    value,
                };
                if let Some(entry) = thread.get_mut(&found) {
                    // How a message is reached: links from the step before it, not back.
                    if entry.depth > depth
                        && entry.links.len() < MAX_LINKS
                        && !entry.links.contains(&link)
                    {
                        entry.links.push(link);
                    }
                    continue;
                }
                let Some(other) = self.store.shared(found)? else {
                    continue;
                };
                if !self.may_read_parts(caller, &other.envelope, &other.receipt) {
                    hidden.insert(found);
                    continue;
                }
                if thread.len() >= limit {
                    truncated = true;
                    break 'walk;
                }
                thread.insert(
                    found,
                    Entry {
                        message: other,
                        links: vec![link],
                        depth: depth + 1,
                    },
                );
                queue.push_back(found);
            }
        }
        if budget == 0 {
            truncated = true;
        }
        let mut entries: Vec<(u64, Entry)> = thread.into_iter().collect();
        entries.sort_unstable_by_key(|(seq, _)| *seq);
        self.record_read(
            caller,
            "GetCase",
            entries.iter().map(|(seq, _)| *seq).collect(),
        )
        .await?;
        Ok(pb::GetCaseResponse {
            entries: entries
                .into_iter()
                .map(|(_, entry)| pb::CaseEntry {
                    message: Some(view(
                        crate::storage::Stored {
                            envelope: (*entry.message.envelope).clone(),
                            receipt: entry.message.receipt.clone(),
                        },
                        caller.id(),
                    )),
                    links: entry.links,
                })
                .collect(),
            truncated,
        })
    }

    /// The messages linked to `message` through the postings: `(seq, reason, shared value)`;
    /// at most [`VALUES`] values of each facet are followed, and the postings read are taken
    /// from `budget`.
    fn linked(
        &self,
        message: &Live,
        budget: &mut usize,
    ) -> Result<Vec<(u64, pb::LinkReason, String)>, Error> {
        let envelope = &message.envelope;
        let facets = Facets::of(envelope);
        let mut found = Vec::new();
        // The messages it refs, and those that ref it.
        for r in envelope.refs.iter().chain(envelope.supersedes.as_ref()) {
            if let Some(seq) = self.store.seq_of(&r.sender, &r.id)? {
                found.push((
                    seq,
                    pb::LinkReason::Ref,
                    Facets::ref_value(&r.sender, &r.id),
                ));
            }
        }
        let own = [Facets::ref_value(&envelope.sender, &envelope.id)];
        let wanted = FOLLOWED.iter().flat_map(|(facet, reason)| {
            let values: &[String] = if *facet == Facet::Ref {
                &own
            } else {
                facets.get(*facet)
            };
            values
                .iter()
                .take(VALUES)
                .map(move |value| (*facet, *reason, value))
        });
        for (facet, reason, value) in wanted {
            if *budget == 0 {
                break;
            }
            let values = [value.clone()];
            let seqs = self.store.postings(
                Some((facet, &values)),
                1,
                u64::MAX,
                LOOKUP.min(*budget),
                false,
            )?;
            *budget = budget.saturating_sub(seqs.len().max(1));
            for seq in seqs {
                if facet == Facet::Seller
                    && !is_pseudonym(value)
                    && !same_platform(self, seq, &facets)?
                {
                    // A seller id means something on its own platform only.
                    continue;
                }
                found.push((seq, reason, value.clone()));
            }
        }
        Ok(found)
    }
}

/// Is `value` a seller pseudonym (64 lower-case hex digits) rather than a seller id?
fn is_pseudonym(value: &str) -> bool {
    crate::domain::vocab::hex64(value).is_ok()
}

/// Does message `seq` concern one of the platforms in `facets`?
fn same_platform(gw: &Gateway, seq: u64, facets: &Facets) -> Result<bool, Error> {
    let Some(other) = gw.store.shared(seq)? else {
        return Ok(false);
    };
    let theirs = Facets::of(&other.envelope);
    Ok(theirs
        .get(Facet::Platform)
        .iter()
        .any(|p| facets.get(Facet::Platform).contains(p)))
}
