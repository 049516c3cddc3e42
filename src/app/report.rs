//! `GetTakedownTimes`: for each takedown notice and listing alert between the caller and a
//! platform, when the gateway accepted it and when it recorded the platform's first outcome to
//! it, each with its audit leaf and an inclusion proof against one checkpoint signed for the
//! report; the figures and summaries of [`crate::log::report`]. The report is recorded as a
//! read of its notices by the caller, and that leaf dates it.
//!
//! Which notices: those the caller sent and those addressed to it as the platform — the two
//! parties of a takedown, who are parties to every leaf the report shows. Found through the
//! platform postings (a platform's notices and alerts are indexed under it) or, for a sender
//! asking about every platform, the kind postings: no scan of the log.

use super::error::Error;
use super::Gateway;
use crate::auth::identity::Caller;
use crate::domain::facets::{Facet, Facets};
use crate::domain::participant::Role;
use crate::domain::Violations;
use crate::log::report::{self, MAX_REPORT_ENTRIES};
use crate::pb::{self, audit_leaf::Event, envelope::Payload, Kind};
use crate::storage::Stored;
use prost::Message;

/// Postings looked at for one report, at most.
const CANDIDATES: usize = 100_000;
/// Reports made at once.
static REPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// Messages referring to one notice looked at for its answer, at most (answers, alerts,
/// others' references): a notice with more references before its answer shows as open.
const ANSWERS: usize = 2_000;

impl Gateway {
    /// The takedown-times report `request` asks for.
    pub async fn takedown_times(
        &self,
        caller: &Caller,
        request: pb::GetTakedownTimesRequest,
    ) -> Result<pb::TakedownTimesReport, Error> {
        // A report reads up to CANDIDATES messages and signs a checkpoint: two at a time, the
        // others wait their turn (the semaphore is never closed).
        let _turn = REPORTS.acquire().await.ok();
        let registry = self.registry.load();
        let mut v = Violations::default();
        if !request.platform.is_empty()
            && registry
                .get(&request.platform)
                .is_none_or(|p| p.role != Role::Platform)
        {
            v.add(
                "platform",
                format!("{:?} is not a registered platform", request.platform),
            );
        }
        let time = |t: &Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
        let (from, to) = (time(&request.from), time(&request.to));
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                v.add("to", "must be after from");
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        self.store.settled().await?;
        let me = caller.id();
        let platform = if !request.platform.is_empty() {
            Some(request.platform.clone())
        } else if caller.participant.role == Role::Platform {
            Some(me.to_string())
        } else {
            None
        };
        let kinds = [
            (Kind::TakedownNotice as i32).to_string(),
            (Kind::ListingAlert as i32).to_string(),
        ];
        let platforms;
        let index = match &platform {
            Some(p) => {
                platforms = [p.clone()];
                (Facet::Platform, &platforms[..])
            }
            None => (Facet::Kind, &kinds[..]),
        };
        // Seqs grow with the time a message is stored: the window narrows the postings read.
        let last = self.store.last_seq();
        let low = match from {
            Some(f) => self.first_stored_at_or_after(f, last)?,
            None => 1,
        }
        .max(request.after_seq.saturating_add(1));
        let high = match to {
            Some(t) => self.first_stored_at_or_after(t, last)?.saturating_sub(1),
            None => last,
        };
        let mut candidates = self
            .store
            .postings(Some(index), low, high, CANDIDATES + 1, true)?;
        let mut entries = Vec::new();
        // Pages go by sequence number: messages of one commit share their time.
        let (mut truncated, mut next_after_seq) = (false, 0);
        if candidates.len() > CANDIDATES {
            // Looked at as many as a report may: the rest comes after the last looked at.
            candidates.truncate(CANDIDATES);
            truncated = true;
            next_after_seq = candidates.last().copied().unwrap_or(0);
        }
        for seq in candidates {
            let Some(stored) = self.store.get(seq)? else {
                continue;
            };
            let Some(notice_platform) = platform_of(&stored) else {
                continue;
            };
            let stored_at = time(&stored.receipt.stored_at);
            let between = stored.envelope.sender == me || notice_platform == me;
            if !between
                || platform.as_ref().is_some_and(|p| *p != notice_platform)
                || from.is_some_and(|f| stored_at < Some(f))
                || to.is_some_and(|t| stored_at >= Some(t))
                || !self.may_read(caller, &stored)
            {
                continue;
            }
            if entries.len() == MAX_REPORT_ENTRIES {
                truncated = true;
                next_after_seq = entries
                    .last()
                    .map_or(0, |(e, _): &(pb::TakedownTime, _)| e.seq);
                break;
            }
            entries.push(self.entry(stored, notice_platform)?);
        }
        // The claims first, with the indexes of the leaves that back them: the report's own
        // leaf commits to them, so they cannot be changed once made.
        let unproven = |index: u64| pb::ProvenLeaf {
            index,
            ..Default::default()
        };
        let mut report = pb::TakedownTimesReport {
            request: Some(request),
            caller: me.to_string(),
            truncated,
            next_after_seq,
            ..Default::default()
        };
        for (mut entry, (accepted, answer)) in entries {
            entry.accepted = Some(unproven(accepted));
            if let Some((answered, outcome_accepted)) = answer {
                entry.answered = Some(unproven(answered));
                entry.outcome_accepted = Some(unproven(outcome_accepted));
            }
            report.entries.push(entry);
        }
        // The report is a read of its notices by the caller: recorded with the claims' digest,
        // and its leaf dates it.
        let seqs: Vec<u64> = report.entries.iter().map(|e| e.seq).collect();
        let mut read = super::events::read(caller, "GetTakedownTimes", seqs);
        if let Some(pb::audit_leaf::Event::Read(r)) = &mut read.event {
            r.digest = report::claims_digest(&report);
        }
        let index = self.store.record(vec![read]).await?[0];
        let checkpoint = self.store.checkpoint_now().await?;
        // Proofs are read from the tiles of the index: it must hold the report's own leaf.
        self.store.settled().await?;
        let size = checkpoint.size;
        let report_leaf = self.proven(index, size)?;
        let as_of = pb::AuditLeaf::decode(report_leaf.data.as_slice())
            .ok()
            .and_then(|l| l.time);
        for entry in &mut report.entries {
            for leaf in [
                &mut entry.accepted,
                &mut entry.answered,
                &mut entry.outcome_accepted,
            ]
            .into_iter()
            .flatten()
            {
                *leaf = self.proven(leaf.index, size)?;
            }
            report::figures(entry, as_of.as_ref());
        }
        report.checkpoint = checkpoint.note.clone();
        report.tree_size = size;
        report.root_hash = checkpoint.root.to_vec();
        report.report_leaf = Some(report_leaf);
        report.as_of = as_of;
        report.summaries = report::summarize(&report.entries);
        Ok(report)
    }

    /// The first message number stored at or after `t` (`last + 1` when none): seqs are given
    /// in the order messages are stored, so a binary search over their times finds it.
    fn first_stored_at_or_after(&self, t: (i64, i32), last: u64) -> Result<u64, Error> {
        let (mut low, mut high) = (1u64, last + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            let at = self
                .store
                .get(mid)?
                .and_then(|m| m.receipt.stored_at)
                .map(|s| (s.seconds, s.nanos));
            if at.is_some_and(|at| at >= t) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        Ok(low)
    }

    /// Leaf `index` with its inclusion proof in the tree of `size` leaves.
    fn proven(&self, index: u64, size: u64) -> Result<pb::ProvenLeaf, Error> {
        let data = self
            .store
            .leaves(index, index + 1)?
            .pop()
            .map(|(_, _, data)| data)
            .unwrap_or_default();
        let proof = self.store.inclusion_proof(index, size)?;
        Ok(pb::ProvenLeaf {
            index,
            data,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// The entry of one notice, without proofs and figures, and the indexes of its leaves:
    /// acceptance, and the answer and the outcome's acceptance when answered.
    fn entry(
        &self,
        notice: Stored,
        platform: String,
    ) -> Result<(pb::TakedownTime, EntryLeaves), Error> {
        let envelope = &notice.envelope;
        let mut entry = pb::TakedownTime {
            notice: Some(pb::MessageRef {
                sender: envelope.sender.clone(),
                id: envelope.id.clone(),
            }),
            seq: notice.receipt.seq,
            kind: envelope.kind,
            accepted_at: self.leaf_time(notice.receipt.leaf_index)?,
            respond_by: match &envelope.payload {
                Some(Payload::TakedownNotice(n)) => n.respond_by,
                _ => None,
            },
            envelope: envelope.encode_to_vec(),
            platform: platform.clone(),
            ..Default::default()
        };
        let mut answered = None;
        // The platform's outcomes ref the notice; the first recorded as its answer counts.
        let refs = [Facets::ref_value(&envelope.sender, &envelope.id)];
        let answers = self.store.postings(
            Some((Facet::Ref, &refs)),
            notice.receipt.seq + 1,
            u64::MAX,
            ANSWERS,
            true,
        )?;
        for seq in answers {
            let Some(answer) = self.store.get(seq)? else {
                continue;
            };
            let Some(Payload::TakedownOutcome(outcome)) = &answer.envelope.payload else {
                continue;
            };
            if answer.envelope.sender != platform {
                continue;
            }
            let Some((index, leaf)) = self.answer_leaf(&answer, notice.receipt.seq)? else {
                continue;
            };
            entry.outcome = Some(pb::MessageRef {
                sender: answer.envelope.sender.clone(),
                id: answer.envelope.id.clone(),
            });
            entry.outcome_seq = seq;
            entry.outcome_status = outcome.status;
            entry.answered_at = leaf.time;
            entry.outcome_envelope = answer.envelope.encode_to_vec();
            answered = Some((index, answer.receipt.leaf_index));
            break;
        }
        Ok((entry, (notice.receipt.leaf_index, answered)))
    }

    /// The time of leaf `index`.
    fn leaf_time(&self, index: u64) -> Result<Option<prost_types::Timestamp>, Error> {
        Ok(self
            .store
            .leaves(index, index + 1)?
            .pop()
            .and_then(|(_, _, data)| pb::AuditLeaf::decode(data.as_slice()).ok())
            .and_then(|leaf| leaf.time))
    }

    /// The leaf that recorded `answer` as the answer to message `seq`, if it is: among the
    /// leaves written with the answer, after its acceptance and deliveries.
    fn answer_leaf(
        &self,
        answer: &Stored,
        seq: u64,
    ) -> Result<Option<(u64, pb::AuditLeaf)>, Error> {
        let first = answer.receipt.leaf_index;
        let end = first + answer.receipt.placements.len() as u64 + 2;
        for (index, _, data) in self.store.leaves(first, end)? {
            let Ok(leaf) = pb::AuditLeaf::decode(data.as_slice()) else {
                continue;
            };
            if let Some(Event::Answered(a)) = &leaf.event {
                if a.seq == answer.receipt.seq {
                    return Ok((a.answered_seq == seq).then_some((index, leaf)));
                }
            }
        }
        Ok(None)
    }
}

/// The leaves of an entry: the notice's acceptance, and when it was answered the answer leaf
/// and the outcome's acceptance.
type EntryLeaves = (u64, Option<(u64, u64)>);

/// The platform a takedown notice or listing alert asks to act.
fn platform_of(stored: &Stored) -> Option<String> {
    match &stored.envelope.payload {
        Some(Payload::TakedownNotice(n)) => Some(n.platform.clone()),
        Some(Payload::ListingAlert(_)) => stored.envelope.recipients.first().cloned(),
        _ => None,
    }
}
