//! `ipex export dsa-sor`: the calling platform's takedown outcomes as DSA statements of reasons
//! ([`crate::domain::dsa`]), read through the gateway as any of its messages (Search for its
//! outcomes, Get for the notices they answer), written in batches the Transparency Database
//! API takes.

use super::client::Clients;
use super::error::CliError;
use crate::domain::dsa::{self, Answered, NoStatement};
use crate::pb::{self, envelope::Payload};
use serde_json::{json, Value};
use std::path::Path;

/// The message `r` names, if the caller may read it.
async fn get(clients: &mut Clients, r: &pb::MessageRef) -> Result<Option<pb::Envelope>, CliError> {
    let request = pb::GetRequest {
        key: Some(pb::get_request::Key::Ref(r.clone())),
    };
    match clients.exchange.get(request).await {
        Ok(answer) => Ok(answer.into_inner().message.and_then(|m| m.envelope)),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// Exports the caller's outcomes stored since `since` into `out`; returns what it wrote.
pub async fn export(
    clients: &mut Clients,
    since: Option<prost_types::Timestamp>,
    out: &Path,
) -> Result<Value, CliError> {
    let me = clients
        .participants
        .who_am_i(pb::WhoAmIRequest {})
        .await?
        .into_inner()
        .participant
        .unwrap_or_default();
    if me.role != pb::Role::Platform as i32 {
        return Err(CliError::Input(format!(
            "{} is not a platform: statements of reasons are a platform's",
            me.id
        )));
    }
    let mut request = pb::SearchRequest {
        filter: Some(pb::Filter {
            kinds: vec![pb::Kind::TakedownOutcome as i32],
            platforms: vec![me.id.clone()],
            ..Default::default()
        }),
        stored_from: since,
        oldest_first: true,
        limit: crate::pb::limits::MAX_SEARCH_PAGE,
        ..Default::default()
    };
    // The platform's own outcomes, oldest first.
    let mut outcomes: Vec<(u64, pb::Envelope)> = Vec::new();
    loop {
        let page = clients.exchange.search(request.clone()).await?.into_inner();
        outcomes.extend(
            page.messages
                .into_iter()
                .filter_map(|m| m.envelope.map(|e| (m.seq, e)))
                .filter(|(_, e)| e.sender == me.id),
        );
        if page.next_cursor.is_empty() {
            break;
        }
        request.cursor = page.next_cursor;
    }
    // An outcome the platform replaced later is not a decision of its own: its successor is.
    let superseded: std::collections::HashSet<String> = outcomes
        .iter()
        .filter_map(|(_, e)| e.supersedes.as_ref())
        .filter(|s| s.sender == me.id)
        .map(|s| s.id.clone())
        .collect();
    let mut statements = Vec::new();
    let mut problems = Vec::new();
    let mut not_restrictions = 0usize;
    let mut replaced = 0usize;
    for (seq, outcome) in outcomes {
        if superseded.contains(&outcome.id) {
            replaced += 1;
            continue;
        }
        let name = format!("{}/{}", outcome.sender, outcome.id);
        let answered = match outcome.refs.first() {
            Some(r) => get(clients, r).await?,
            None => None,
        };
        let result = match &answered {
            Some(a) if matches!(a.payload, Some(Payload::ListingAlert(_))) => {
                dsa::statement(&outcome, Answered::Alert(a))
            }
            Some(a) => dsa::statement(&outcome, Answered::Notice(a)),
            None => Err(NoStatement::Missing(vec![
                "refs: the notice it answers could not be read".into(),
            ])),
        };
        match result {
            Ok(statement) => statements.push(statement),
            Err(NoStatement::NotARestriction(_)) => not_restrictions += 1,
            Err(NoStatement::Missing(missing)) => problems.push(json!({
                "outcome": name,
                "seq": seq,
                "missing": missing,
            })),
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::Input(format!("cannot create {}: {e}", out.display())))?;
    // A shorter export replaces a longer one: no batch of an earlier run stays behind.
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("statements-") && name.ends_with(".json") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let write = |name: &str, value: &Value| {
        let path = out.join(name);
        let text =
            serde_json::to_string_pretty(value).map_err(|e| CliError::Input(e.to_string()))?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| CliError::Input(format!("cannot write {}: {e}", path.display())))
    };
    let mut files = Vec::new();
    for (i, batch) in statements.chunks(dsa::BATCH).enumerate() {
        let name = format!("statements-{:04}.json", i + 1);
        write(&name, &json!({ "statements": batch }))?;
        files.push(name);
    }
    write("problems.json", &json!({ "outcomes": problems }))?;
    Ok(json!({
        "out": out.display().to_string(),
        "statements": statements.len(),
        "files": files,
        "not_restrictions": not_restrictions,
        "superseded": replaced,
        "problems": problems,
    }))
}
