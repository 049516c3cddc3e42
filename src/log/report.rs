//! Takedown-times reports ([`pb::TakedownTimesReport`]): how long each platform took to answer
//! the takedown notices and listing alerts it received, every timestamp backed by the audit
//! leaf that recorded it, with an inclusion proof against one signed checkpoint.
//!
//! The gateway builds a report's figures with [`figures`] and [`summarize`]; anyone holding
//! the gateway's checkpoint verifier key checks a report offline with [`verify`], which
//! recomputes every figure from the proven leaves and stored envelopes and names the first
//! entry that does not hold. What a report cannot prove: that no earlier outcome than the one
//! it names exists, nor that an open notice has none (absence needs the whole log).

use super::merkle::{leaf_hash, verify_inclusion, Hash};
use super::note::NoteVerifier;
use crate::pb::{self, audit_leaf::Event, envelope::Payload};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Most notices in one report.
pub const MAX_REPORT_ENTRIES: usize = 500;
/// The status of a notice without outcome, in summaries.
pub const OPEN: &str = "OPEN";

/// Seconds since the epoch of a timestamp, with its nanoseconds.
pub fn seconds(t: Option<&prost_types::Timestamp>) -> f64 {
    t.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

fn before(a: Option<&prost_types::Timestamp>, b: Option<&prost_types::Timestamp>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a.seconds, a.nanos) < (b.seconds, b.nanos),
        _ => false,
    }
}

/// Sets an entry's figures from its times: the delay, whether the answer came after
/// `respond_by`, whether it is open past `respond_by` at `as_of`.
pub fn figures(entry: &mut pb::TakedownTime, as_of: Option<&prost_types::Timestamp>) {
    let answered = entry.answered_at.is_some();
    let deadline = entry.respond_by.as_ref();
    entry.delay_seconds = if answered {
        round_ms(seconds(entry.answered_at.as_ref()) - seconds(entry.accepted_at.as_ref()))
    } else {
        0.0
    };
    entry.answered_late = answered && before(deadline, entry.answered_at.as_ref());
    entry.open_past_deadline = !answered && before(deadline, as_of);
}

/// Delays are given to the millisecond, so that they read the same after a JSON round trip.
fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The status of an entry in summaries: its first outcome's status name, or [`OPEN`].
pub fn status_of(entry: &pb::TakedownTime) -> String {
    if entry.answered_at.is_none() {
        return OPEN.to_string();
    }
    pb::OutcomeStatus::try_from(entry.outcome_status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| entry.outcome_status.to_string())
}

/// The nearest-rank percentile `q` (0 < q ≤ 1) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The summaries of `entries`: one per platform, one per status, and one of all, in that
/// order (each group sorted by name).
pub fn summarize(entries: &[pb::TakedownTime]) -> Vec<pb::TakedownSummary> {
    let mut by_platform: BTreeMap<String, Vec<&pb::TakedownTime>> = BTreeMap::new();
    let mut by_status: BTreeMap<String, Vec<&pb::TakedownTime>> = BTreeMap::new();
    for e in entries {
        by_platform.entry(e.platform.clone()).or_default().push(e);
        by_status.entry(status_of(e)).or_default().push(e);
    }
    let group = |platform: &str, status: &str, members: &[&pb::TakedownTime]| {
        let mut delays: Vec<f64> = members
            .iter()
            .filter(|e| e.answered_at.is_some())
            .map(|e| e.delay_seconds)
            .collect();
        delays.sort_by(f64::total_cmp);
        pb::TakedownSummary {
            platform: platform.to_string(),
            status: status.to_string(),
            count: members.len() as u64,
            answered: delays.len() as u64,
            p50_seconds: percentile(&delays, 0.5),
            p90_seconds: percentile(&delays, 0.9),
            max_seconds: delays.last().copied().unwrap_or(0.0),
            answered_late: members.iter().filter(|e| e.answered_late).count() as u64,
            open_past_deadline: members.iter().filter(|e| e.open_past_deadline).count() as u64,
        }
    };
    let mut out: Vec<pb::TakedownSummary> = by_platform
        .iter()
        .map(|(platform, members)| group(platform, "", members))
        .collect();
    out.extend(
        by_status
            .iter()
            .map(|(status, members)| group("", status, members)),
    );
    out.push(group("", "", &entries.iter().collect::<Vec<_>>()));
    out
}

fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| format!("{}.{:09}", t.seconds, t.nanos),
    )
}

/// The report's claims, as text: who asked what, and for each notice its platform and the
/// outcome (and answer leaf) named as its first answer. The report's own leaf commits to its
/// SHA-256 ([`claims_digest`]), so that no claim can be changed, and no answer removed, after
/// the gateway made the report.
pub fn claims(report: &pb::TakedownTimesReport) -> String {
    let request = report.request.clone().unwrap_or_default();
    let mut text = format!(
        "ipex takedown-times claims v1\ncaller {}\nplatform {}\nfrom {}\nto {}\nafter_seq {}\ntruncated {}\nnext_after_seq {}\n",
        report.caller,
        request.platform,
        time_text(request.from.as_ref()),
        time_text(request.to.as_ref()),
        request.after_seq,
        u8::from(report.truncated),
        report.next_after_seq,
    );
    for e in &report.entries {
        let answered = e
            .answered
            .as_ref()
            .map_or_else(|| "-".to_string(), |l| l.index.to_string());
        text.push_str(&format!(
            "entry {} {} {} {answered}\n",
            e.seq, e.platform, e.outcome_seq
        ));
    }
    text
}

/// SHA-256 of [`claims`], hex: what the report's leaf records.
pub fn claims_digest(report: &pb::TakedownTimesReport) -> String {
    hex::encode(Sha256::digest(claims(report).as_bytes()))
}

/// A report that does not hold: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct ReportError {
    /// The part of the report at fault (`entries[3] (customs-nl/tdn-1)`, `checkpoint`).
    pub at: String,
    /// What does not hold.
    pub reason: String,
}

/// What a verified report says.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Notices checked.
    pub entries: usize,
    /// Leaves proven.
    pub leaves: usize,
}

fn fail(at: impl Into<String>, reason: impl Into<String>) -> ReportError {
    ReportError {
        at: at.into(),
        reason: reason.into(),
    }
}

/// Checks `leaf` against the checkpoint and decodes it.
fn proven(
    leaf: Option<&pb::ProvenLeaf>,
    size: u64,
    root: &Hash,
    at: &str,
    what: &str,
) -> Result<pb::AuditLeaf, ReportError> {
    let leaf = leaf.ok_or_else(|| fail(at, format!("{what} is missing")))?;
    let proof: Vec<Hash> = leaf
        .proof
        .iter()
        .map(|h| h.as_slice().try_into())
        .collect::<Result<_, _>>()
        .map_err(|_| fail(at, format!("{what}: a proof hash is not 32 bytes")))?;
    verify_inclusion(&leaf_hash(&leaf.data), leaf.index, size, &proof, root).map_err(|e| {
        fail(
            at,
            format!(
                "{what} (leaf {}) is not in the checkpoint's tree: {e}",
                leaf.index
            ),
        )
    })?;
    pb::AuditLeaf::decode(leaf.data.as_slice()).map_err(|e| {
        fail(
            at,
            format!("{what} (leaf {}) does not decode: {e}", leaf.index),
        )
    })
}

fn same_time(
    leaf: &pb::AuditLeaf,
    claimed: Option<&prost_types::Timestamp>,
    at: &str,
    what: &str,
) -> Result<(), ReportError> {
    if leaf.time.as_ref() != claimed || claimed.is_none() {
        return Err(fail(
            at,
            format!("{what} is not the time of the leaf that recorded it"),
        ));
    }
    Ok(())
}

/// The envelope in `bytes`, checked against the digest its acceptance leaf commits to.
fn envelope(
    bytes: &[u8],
    digest_hex: &str,
    at: &str,
    what: &str,
) -> Result<pb::Envelope, ReportError> {
    if hex::encode(Sha256::digest(bytes)) != digest_hex {
        return Err(fail(
            at,
            format!("the {what} is not the one its acceptance leaf commits to (envelope_sha256)"),
        ));
    }
    pb::Envelope::decode(bytes).map_err(|e| fail(at, format!("the {what} does not decode: {e}")))
}

/// Checks one entry against the checkpoint's tree; `report_leaf` dates the report.
fn check_entry(
    e: &pb::TakedownTime,
    at: &str,
    caller: &str,
    size: u64,
    root: &Hash,
    as_of: Option<&prost_types::Timestamp>,
) -> Result<usize, ReportError> {
    let notice = e.notice.clone().unwrap_or_default();
    // The notice's acceptance.
    let leaf = proven(e.accepted.as_ref(), size, root, at, "the acceptance leaf")?;
    let Some(Event::Accepted(accepted)) = &leaf.event else {
        return Err(fail(at, "the acceptance leaf records no acceptance"));
    };
    if accepted.sender != notice.sender
        || accepted.id != notice.id
        || accepted.seq != e.seq
        || accepted.kind != e.kind
    {
        return Err(fail(
            at,
            "the notice (sender, id, seq, kind) is not the one its acceptance leaf records",
        ));
    }
    if e.kind != pb::Kind::TakedownNotice as i32 && e.kind != pb::Kind::ListingAlert as i32 {
        return Err(fail(at, "is neither a takedown notice nor a listing alert"));
    }
    if !accepted.recipients.contains(&e.platform) {
        return Err(fail(
            at,
            format!(
                "the platform {:?} is not a recipient of the notice",
                e.platform
            ),
        ));
    }
    same_time(&leaf, e.accepted_at.as_ref(), at, "accepted_at")?;
    let stored = envelope(&e.envelope, &accepted.envelope_sha256, at, "notice")?;
    let (respond_by, named) = match &stored.payload {
        Some(Payload::TakedownNotice(n)) => (n.respond_by, n.platform.as_str()),
        Some(Payload::ListingAlert(_)) => {
            (None, stored.recipients.first().map_or("", String::as_str))
        }
        _ => {
            return Err(fail(
                at,
                "the notice is neither a takedown notice nor a listing alert",
            ))
        }
    };
    if named != e.platform {
        return Err(fail(
            at,
            format!(
                "the platform {:?} is not the one the notice names",
                e.platform
            ),
        ));
    }
    if caller != notice.sender && caller != e.platform {
        return Err(fail(
            at,
            "is a notice between others: the caller neither sent it nor is its platform",
        ));
    }
    if respond_by != e.respond_by {
        return Err(fail(at, "respond_by is not the notice's"));
    }
    let mut leaves = 1;
    // The first outcome, if any.
    if e.answered_at.is_some() || e.answered.is_some() || e.outcome.is_some() {
        let outcome = e.outcome.clone().unwrap_or_default();
        let leaf = proven(e.answered.as_ref(), size, root, at, "the answer leaf")?;
        let Some(Event::Answered(answered)) = &leaf.event else {
            return Err(fail(at, "the answer leaf records no answer"));
        };
        if answered.answered_seq != e.seq
            || answered.answered_sender != notice.sender
            || answered.seq != e.outcome_seq
            || answered.sender != outcome.sender
            || answered.sender != e.platform
        {
            return Err(fail(
                at,
                "the outcome is not recorded as the platform's answer to this notice",
            ));
        }
        same_time(&leaf, e.answered_at.as_ref(), at, "answered_at")?;
        let leaf = proven(
            e.outcome_accepted.as_ref(),
            size,
            root,
            at,
            "the outcome's acceptance leaf",
        )?;
        let Some(Event::Accepted(accepted)) = &leaf.event else {
            return Err(fail(
                at,
                "the outcome's acceptance leaf records no acceptance",
            ));
        };
        if accepted.seq != e.outcome_seq
            || accepted.sender != outcome.sender
            || accepted.id != outcome.id
        {
            return Err(fail(
                at,
                "the outcome is not the one its acceptance leaf records",
            ));
        }
        let stored = envelope(
            &e.outcome_envelope,
            &accepted.envelope_sha256,
            at,
            "outcome",
        )?;
        let status = match &stored.payload {
            Some(Payload::TakedownOutcome(o)) => o.status,
            _ => return Err(fail(at, "the outcome is not a takedown outcome")),
        };
        if status != e.outcome_status {
            return Err(fail(at, "outcome_status is not the outcome's"));
        }
        leaves += 2;
    } else if e.outcome_seq != 0
        || e.outcome_status != 0
        || e.outcome_accepted.is_some()
        || !e.outcome_envelope.is_empty()
    {
        return Err(fail(
            at,
            "is open, yet carries outcome fields: an open notice names no outcome",
        ));
    }
    let mut recomputed = e.clone();
    figures(&mut recomputed, as_of);
    for (name, ok) in [
        ("delay_seconds", recomputed.delay_seconds == e.delay_seconds),
        ("answered_late", recomputed.answered_late == e.answered_late),
        (
            "open_past_deadline",
            recomputed.open_past_deadline == e.open_past_deadline,
        ),
    ] {
        if !ok {
            return Err(fail(
                at,
                format!("{name} does not follow from the proven times"),
            ));
        }
    }
    Ok(leaves)
}

/// Checks a report offline against the gateway's checkpoint verifier: the checkpoint's
/// signature, every leaf's inclusion proof, that each leaf records what the entry says at
/// the time it says, that each envelope is the one its leaf commits to, every figure, and
/// the summaries. Fails naming the first part that does not hold.
pub fn verify(
    report: &pb::TakedownTimesReport,
    verifier: &NoteVerifier,
) -> Result<Verified, ReportError> {
    let checkpoint = verifier
        .verify_checkpoint(&report.checkpoint)
        .map_err(|e| fail("checkpoint", e.to_string()))?;
    if checkpoint.size != report.tree_size || checkpoint.root.as_slice() != report.root_hash {
        return Err(fail(
            "checkpoint",
            "tree_size or root_hash is not the signed checkpoint's",
        ));
    }
    let (size, root) = (checkpoint.size, checkpoint.root);
    // The report's own leaf: the caller's read of these notices, which dates it.
    let leaf = proven(
        report.report_leaf.as_ref(),
        size,
        &root,
        "report_leaf",
        "the report leaf",
    )?;
    let Some(Event::Read(read)) = &leaf.event else {
        return Err(fail("report_leaf", "records no read"));
    };
    if read.reader != report.caller || read.method != "GetTakedownTimes" {
        return Err(fail(
            "report_leaf",
            "is not the caller's GetTakedownTimes read",
        ));
    }
    same_time(&leaf, report.as_of.as_ref(), "report_leaf", "as_of")?;
    let seqs: Vec<u64> = report.entries.iter().map(|e| e.seq).collect();
    if read.seqs != seqs {
        return Err(fail(
            "report_leaf",
            "the notices read are not the report's entries",
        ));
    }
    if read.digest != claims_digest(report) {
        return Err(fail(
            "report_leaf",
            "the report's claims (request, platforms, outcomes, truncation) are not the ones its leaf records",
        ));
    }
    let after = report.request.as_ref().map_or(0, |r| r.after_seq);
    let mut leaves = 1;
    for (i, e) in report.entries.iter().enumerate() {
        if e.seq <= after {
            return Err(fail(
                format!("entries[{i}]"),
                format!("seq {} is not after the request's after_seq {after}", e.seq),
            ));
        }
        let notice = e.notice.clone().unwrap_or_default();
        let at = format!("entries[{i}] ({}/{})", notice.sender, notice.id);
        leaves += check_entry(e, &at, &report.caller, size, &root, report.as_of.as_ref())?;
    }
    let summaries = summarize(&report.entries);
    if summaries.len() != report.summaries.len() {
        return Err(fail("summaries", "are not those of the entries"));
    }
    for (i, (ours, theirs)) in summaries.iter().zip(&report.summaries).enumerate() {
        if ours != theirs {
            return Err(fail(
                format!(
                    "summaries[{i}] (platform {:?}, status {:?})",
                    theirs.platform, theirs.status
                ),
                "does not follow from the entries",
            ));
        }
    }
    Ok(Verified {
        tree_size: size,
        entries: report.entries.len(),
        leaves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: &str, delay: Option<f64>, status: pb::OutcomeStatus) -> pb::TakedownTime {
        let at = |s: f64| prost_types::Timestamp {
            seconds: s as i64,
            nanos: 0,
        };
        let mut e = pb::TakedownTime {
            platform: platform.into(),
            accepted_at: Some(at(1000.0)),
            respond_by: Some(at(1100.0)),
            answered_at: delay.map(|d| at(1000.0 + d)),
            outcome_status: status as i32,
            ..Default::default()
        };
        figures(&mut e, Some(&at(5000.0)));
        e
    }

    #[test]
    fn figures_and_summaries() {
        use pb::OutcomeStatus::*;
        let entries = [
            entry("market-a", Some(10.0), Actioned),
            entry("market-a", Some(200.0), Actioned),
            entry("market-a", None, Unspecified),
            entry("market-b", Some(30.0), Rejected),
        ];
        assert!(entries[1].answered_late && !entries[0].answered_late);
        assert!(entries[2].open_past_deadline);
        let s = summarize(&entries);
        let names: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.platform.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("market-a", ""),
                ("market-b", ""),
                ("", "OPEN"),
                ("", "OUTCOME_STATUS_ACTIONED"),
                ("", "OUTCOME_STATUS_REJECTED"),
                ("", "")
            ]
        );
        let a = &s[0];
        assert_eq!(
            (a.count, a.answered, a.answered_late, a.open_past_deadline),
            (3, 2, 1, 1)
        );
        assert_eq!(
            (a.p50_seconds, a.p90_seconds, a.max_seconds),
            (10.0, 200.0, 200.0)
        );
        let all = s.last().unwrap();
        // Nearest rank over 10, 30, 200: p50 is the second.
        assert_eq!(
            (all.count, all.p50_seconds, all.p90_seconds),
            (4, 30.0, 200.0)
        );
    }
}
