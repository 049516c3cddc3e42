//! Reading what the caller may read: `Get` by sequence number or by (sender, id), and pages
//! of `ListInbox`. Every read is in the audit log before anything is disclosed.

use super::error::Error;
use super::{events, view, Gateway};
use crate::auth::identity::Caller;
use crate::domain::Violations;
use crate::pb::limits::{DEFAULT_PAGE, MAX_FILTER_VALUES, MAX_PAGE};
use crate::pb::{self, Kind, Tlp};

impl Gateway {
    /// The message `key` names, if the caller may read it.
    /// The read is recorded in the audit log before the message is returned.
    pub async fn get(
        &self,
        caller: &Caller,
        key: Option<pb::get_request::Key>,
    ) -> Result<pb::GetResponse, Error> {
        // Whatever was stored before this call is found.
        self.store.settled().await?;
        let (stored, what) = match key {
            Some(pb::get_request::Key::Seq(seq)) => (self.store.get(seq)?, format!("seq {seq}")),
            Some(pb::get_request::Key::Ref(r)) => (
                self.store.get_by_ref(&r.sender, &r.id)?,
                format!("{:?} from {}", r.id, r.sender),
            ),
            None => {
                return Err(Error::invalid("key", "is required: seq or ref"));
            }
        };
        // A message the caller may not read is answered as one that is not stored, so that
        // no one learns which ids exist.
        let answer = format!("no message {what} is stored that {} may read", caller.id());
        let Some(stored) = stored else {
            return Err(Error::NotFound(answer));
        };
        if !self.may_read(caller, &stored) {
            let tlp = Tlp::try_from(stored.envelope.tlp).unwrap_or(Tlp::Unspecified);
            return Err(Error::Hidden {
                answer,
                withheld: format!(
                    "tlp: message {what} is {} and not addressed to the reader",
                    tlp.as_str_name()
                ),
            });
        }
        self.record_read(caller, "Get", vec![stored.receipt.seq])
            .await?;
        // Where it stands at peer gateways is for its sender.
        let forwarding = if stored.envelope.sender == caller.id() {
            self.forwarding_of(&stored)?
        } else {
            Vec::new()
        };
        Ok(pb::GetResponse {
            message: Some(view(stored, caller.id())),
            forwarding,
        })
    }

    /// Records that `caller` was given the messages `seqs`; waits until it is durable, so that
    /// nothing is disclosed without a log entry.
    pub(crate) async fn record_read(
        &self,
        caller: &Caller,
        method: &str,
        seqs: Vec<u64>,
    ) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.store
            .record(vec![events::read(caller, method, seqs)])
            .await?;
        Ok(())
    }

    /// A page of the caller's inbox; the page is recorded in the audit log as one read.
    pub async fn list_inbox(
        &self,
        caller: &Caller,
        request: pb::ListInboxRequest,
    ) -> Result<pb::ListInboxResponse, Error> {
        let mut v = Violations::default();
        let limit = super::page_limit(request.limit, DEFAULT_PAGE, MAX_PAGE, &mut v);
        if request.kinds.len() > MAX_FILTER_VALUES {
            v.add(
                "kinds",
                format!(
                    "at most {MAX_FILTER_VALUES} values, not {}",
                    request.kinds.len()
                ),
            );
        }
        let mut kinds = Vec::with_capacity(request.kinds.len());
        for (i, k) in request.kinds.iter().enumerate() {
            match Kind::try_from(*k) {
                Ok(Kind::Unspecified) | Err(_) => {
                    v.add(format!("kinds[{i}]"), format!("{k} is not a message kind"))
                }
                Ok(kind) => kinds.push(kind as i32),
            }
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        self.store.settled().await?;
        let head = self.store.inbox_head(caller.id())?;
        let mut messages = Vec::new();
        let mut next_after = request.after;
        // Filters may skip entries: look at most this many before answering a short page.
        let mut budget = limit.saturating_mul(10).max(1000);
        'pages: while messages.len() < limit && budget > 0 {
            let entries = self
                .store
                .inbox(caller.id(), next_after, limit.min(budget))?;
            if entries.is_empty() {
                break;
            }
            for (inbox_no, seq) in entries {
                budget -= 1;
                next_after = inbox_no;
                let Some(stored) = self.store.get(seq)? else {
                    continue;
                };
                if (kinds.is_empty() || kinds.contains(&stored.envelope.kind))
                    && self.may_read(caller, &stored)
                {
                    messages.push(view(stored, caller.id()));
                    if messages.len() >= limit {
                        break 'pages;
                    }
                }
            }
        }
        self.record_read(
            caller,
            "ListInbox",
            messages.iter().map(|m| m.seq).collect(),
        )
        .await?;
        Ok(pb::ListInboxResponse {
            messages,
            next_after,
            head,
        })
    }
}
