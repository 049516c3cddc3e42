//! The `ipex` command-line client and admin tool. It lives in the library so that tests drive
//! the same code as users; `src/bin/ipex.rs` only calls [`main`].

//!
//! - [`args`] — the command line;
//! - [`client`] — connecting to a gateway over mutual TLS (also for tests and benchmarks);
//! - [`audit`] — verifying and exporting the exchange log;
//! - [`bench`] — `ipex bench`;
//! - [`message`] — signing envelopes before they are sent, verifying a stored message's
//!   signature offline;
//! - [`report`] — takedown-times reports: fetched, drawn, verified offline;
//! - [`dsa`] — a platform's outcomes as DSA statements of reasons;
//! - [`token`] — development officer tokens.
//!
//! Uses [`crate::pb`], [`crate::log`] (verification), [`crate::domain`] (kind names; seller
//! pseudonyms, which `ipex pseudonym` computes without connecting), [`crate::dev`] (the
//! development PKI) and, for `bench` without `--gateway`, [`crate::server`] to start a gateway
//! of its own: never the gateway's internals.

pub mod args;
pub mod audit;
pub mod bench;
pub mod client;
pub mod dsa;
pub mod error;
pub mod message;
pub mod report;
pub mod token;

use crate::pb;
use args::{
    AuditCommand, CertsCommand, Cli, Command, ExportCommand, MessageCommand, ReportCommand,
    StoreCommand, TokenCommand,
};
use clap::Parser;
use client::Clients;
pub use error::CliError;
use std::path::PathBuf;

/// Parses the CLI, runs it, prints the result; returns the process exit code.
pub async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print(out: &mut dyn std::io::Write, value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Input(e.to_string()))?;
    writeln!(out, "{text}").map_err(|e| CliError::Input(format!("cannot write output: {e}")))
}

/// Prints a message of the wire protocol as pretty proto3 JSON; `name` is its full name.
fn print_pb<T: prost::Message>(
    out: &mut dyn std::io::Write,
    name: &str,
    message: &T,
) -> Result<(), CliError> {
    print(out, &crate::pb::json::to_json_value(name, message))
}

fn print_line(out: &mut dyn std::io::Write, value: &serde_json::Value) -> Result<(), CliError> {
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Input(format!("cannot write output: {e}")))
}

/// Prints deliveries as JSON lines; acknowledges a durable subscription's deliveries every
/// 100 messages, when the stream is quiet for half a second, and before stopping.
async fn subscribe(
    clients: &mut Clients,
    filter: pb::Filter,
    durable: Option<String>,
    from_seq: Option<u64>,
    max: Option<u64>,
    no_ack: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    use tokio_stream::StreamExt;
    let request = pb::SubscribeRequest {
        filter: Some(filter),
        durable_name: durable.clone().unwrap_or_default(),
        start: from_seq.map(pb::subscribe_request::Start::FromSeq),
    };
    let mut stream = clients.exchange.subscribe(request).await?.into_inner();
    let mut delivered = 0u64;
    let mut unacked: Option<u64> = None;
    let exchange = clients.exchange.clone();
    let ack = |up_to: Option<u64>| {
        let name = durable.clone().filter(|_| !no_ack);
        let mut exchange = exchange.clone();
        async move {
            if let (Some(name), Some(up_to_seq)) = (name, up_to) {
                exchange.ack(pb::AckRequest { name, up_to_seq }).await?;
            }
            Ok::<(), CliError>(())
        }
    };
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_millis(500), stream.next()).await;
        match next {
            Err(_) => {
                ack(unacked.take()).await?;
            }
            Ok(None) => {
                ack(unacked.take()).await?;
                return Ok(());
            }
            Ok(Some(Err(status))) => {
                ack(unacked.take()).await?;
                return Err(status.into());
            }
            Ok(Some(Ok(delivery))) => {
                print_line(
                    out,
                    &crate::pb::json::to_json_value("ipex.v1.Delivery", &delivery),
                )?;
                delivered += 1;
                unacked = Some(delivery.seq);
                if max.is_some_and(|m| delivered >= m) {
                    ack(unacked.take()).await?;
                    return Ok(());
                }
                if delivered % 100 == 0 {
                    ack(unacked.take()).await?;
                }
            }
        }
    }
}

/// For `--sign KEY`: the participant the gateway takes this client to be (the sender it will
/// set, which the signature covers) and the key.
async fn signer(
    clients: &mut Clients,
    key: Option<&std::path::Path>,
) -> Result<Option<(String, crate::domain::signature::SigningKey)>, CliError> {
    let Some(path) = key else {
        return Ok(None);
    };
    let key = message::signing_key(path)?;
    let me = clients.participants.who_am_i(pb::WhoAmIRequest {}).await?;
    let id = me
        .get_ref()
        .participant
        .as_ref()
        .map(|p| p.id.clone())
        .ok_or_else(|| CliError::Input("the gateway did not say who you are".into()))?;
    Ok(Some((id, key)))
}

fn read_envelopes(path: &PathBuf, allow_array: bool) -> Result<Vec<pb::Envelope>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    let parse = |json: &str| {
        crate::pb::json::envelope_from_json(json)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
    };
    if allow_array && text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        items.iter().map(|item| parse(&item.to_string())).collect()
    } else {
        Ok(vec![parse(&text)?])
    }
}

/// Creates what development gateway `id` needs to peer, in the PKI in `dir`, and returns what
/// its peers' `[[peers]]` table holds for it.
fn dev_peer(
    dir: &std::path::Path,
    id: &str,
    created: &mut bool,
) -> Result<serde_json::Value, CliError> {
    crate::domain::vocab::participant_id(id)
        .map_err(|e| CliError::Input(format!("--gateway-id: {e}")))?;
    let paths = crate::dev::paths::DevPaths {
        dir: dir.to_path_buf(),
    };
    let input = |e: crate::dev::pki::PkiError| CliError::Input(e.to_string());
    let origin = format!("ipex.local/{id}");
    *created |= crate::dev::ensure_signing_key(&paths.audit_key(), &origin).map_err(input)?;
    *created |= crate::dev::ensure_federation(dir, id, &origin).map_err(input)?;
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
    };
    let checkpoint_key =
        crate::log::note::NoteSigner::from_private_key(read(paths.audit_key())?.trim())
            .map_err(|e| CliError::Input(format!("{}: {e}", paths.audit_key().display())))?
            .verifier_key();
    Ok(serde_json::json!({
        "id": id,
        "ca": paths.ca().display().to_string(),
        "checkpoint_key": checkpoint_key,
        "witness_key": read(paths.witness_vkey())?.trim(),
    }))
}

/// Runs one command, writing JSON to `out`.
pub async fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    if let Command::Certs {
        command: CertsCommand::Init { gateway_id },
    } = &cli.command
    {
        let dir = &cli.identity.certs_dir;
        let input = |e: crate::dev::pki::PkiError| CliError::Input(e.to_string());
        let mut created = crate::dev::pki::ensure_dev_pki(dir).map_err(input)?;
        let mut report = serde_json::json!({
            "certs_dir": dir.display().to_string(),
        });
        if let Some(id) = gateway_id {
            report["peer"] = dev_peer(dir, id, &mut created)?;
        }
        report["created"] = created.into();
        return print(out, &report);
    }
    if let Command::Store { command } = &cli.command {
        let report = match command {
            StoreCommand::Reindex { data_dir } => crate::admin::reindex(data_dir),
            StoreCommand::Migrate { from, to } => crate::admin::migrate(from, to),
        };
        return print(out, &report.map_err(CliError::Store)?);
    }
    if let Command::Audit {
        command:
            AuditCommand::Verify {
                full: true,
                data_dir,
                verifier_key,
                ..
            },
    } = &cli.command
    {
        let report = crate::admin::verify_full(data_dir, verifier_key.as_deref())
            .map_err(CliError::Store)?;
        return print(out, &report);
    }
    if let Command::Audit {
        command:
            AuditCommand::Verify {
                file: Some(file),
                state,
                verifier_key,
                ..
            },
    } = &cli.command
    {
        let report = audit::verify_file(file, state, verifier_key.as_deref())?;
        return print(out, &report);
    }
    if let Command::Token {
        command:
            TokenCommand::Issue {
                sub,
                scope,
                ttl,
                audience,
            },
    } = &cli.command
    {
        let token = token::issue_dev_token(&cli.identity, sub, scope, ttl, audience)?;
        return writeln!(out, "{token}").map_err(|e| CliError::Input(e.to_string()));
    }
    if let Command::Pseudonym {
        kind,
        key_file,
        value,
    } = &cli.command
    {
        // Local only: the community key is read here and goes nowhere else.
        use crate::domain::pseudonym;
        let text = std::fs::read_to_string(key_file).map_err(|e| {
            CliError::Input(format!(
                "cannot read the key file {}: {e}",
                key_file.display()
            ))
        })?;
        let key = pseudonym::parse_key(&text)
            .map_err(|e| CliError::Input(format!("{}: {e}", key_file.display())))?;
        let hex = pseudonym::pseudonym(&key, (*kind).into(), value).map_err(CliError::Input)?;
        return writeln!(out, "{hex}").map_err(|e| CliError::Input(e.to_string()));
    }
    if let Command::Audit {
        command: AuditCommand::VerifyReport { file, key },
    } = &cli.command
    {
        return print(out, &report::verify_report(file, key)?);
    }
    if let Command::Message {
        command: MessageCommand::Verify { file, key },
    } = &cli.command
    {
        return print(out, &message::verify_file(file, key)?);
    }
    if let Command::Bench(args) = &cli.command {
        return bench::run(cli.gateway.as_deref(), &cli.identity, args, out).await;
    }
    let tls = cli.identity.tls()?;
    let channel = client::connect(cli.gateway(), &tls).await?;
    let bearer = client::Bearer::new(cli.identity.token.as_deref())?;
    let mut clients = Clients::with_bearer(channel, bearer);
    match cli.command {
        Command::Whoami => {
            let r = clients.participants.who_am_i(pb::WhoAmIRequest {}).await?;
            print_pb(out, "ipex.v1.WhoAmIResponse", r.get_ref())
        }
        Command::Participants => {
            let r = clients
                .participants
                .list(pb::ListParticipantsRequest {})
                .await?;
            print_pb(out, "ipex.v1.ListParticipantsResponse", r.get_ref())
        }
        Command::Submit { files, sign } => {
            let signer = signer(&mut clients, sign.as_deref()).await?;
            for file in &files {
                let mut envelopes = read_envelopes(file, false)?;
                if let Some((sender, key)) = &signer {
                    message::sign_all(&mut envelopes, sender, key);
                }
                for envelope in envelopes {
                    let r = clients
                        .exchange
                        .submit(pb::SubmitRequest {
                            envelope: Some(envelope),
                        })
                        .await?;
                    print_pb(out, "ipex.v1.SubmitResponse", r.get_ref())?;
                }
            }
            Ok(())
        }
        Command::SubmitBatch { files, sign } => {
            let signer = signer(&mut clients, sign.as_deref()).await?;
            let mut envelopes = Vec::new();
            for file in &files {
                envelopes.extend(read_envelopes(file, true)?);
            }
            if let Some((sender, key)) = &signer {
                message::sign_all(&mut envelopes, sender, key);
            }
            let r = clients
                .exchange
                .submit_batch(pb::SubmitBatchRequest { envelopes })
                .await?;
            print_pb(out, "ipex.v1.SubmitBatchResponse", r.get_ref())
        }
        Command::Get { seq, sender, id } => {
            let key = match (seq, sender, id) {
                (Some(seq), _, _) => pb::get_request::Key::Seq(seq),
                (None, Some(sender), Some(id)) => {
                    pb::get_request::Key::Ref(pb::MessageRef { sender, id })
                }
                _ => return Err(CliError::Input("give --seq, or --sender with --id".into())),
            };
            let r = clients
                .exchange
                .get(pb::GetRequest { key: Some(key) })
                .await?;
            print_pb(out, "ipex.v1.GetResponse", r.get_ref())
        }
        Command::Case { sender, id, limit } => {
            let r = clients
                .exchange
                .get_case(pb::GetCaseRequest {
                    message: Some(pb::MessageRef { sender, id }),
                    limit,
                })
                .await?;
            print_pb(out, "ipex.v1.GetCaseResponse", r.get_ref())
        }
        Command::Inbox {
            after,
            limit,
            kinds,
        } => {
            let kinds = args::parse_kinds(&kinds)?;
            let r = clients
                .exchange
                .list_inbox(pb::ListInboxRequest {
                    after,
                    limit,
                    kinds,
                })
                .await?;
            print_pb(out, "ipex.v1.ListInboxResponse", r.get_ref())
        }
        Command::Subscribe {
            filter,
            durable,
            from_seq,
            max,
            no_ack,
        } => {
            subscribe(
                &mut clients,
                filter.to_pb()?,
                durable,
                from_seq,
                max,
                no_ack,
                out,
            )
            .await
        }
        Command::Search {
            filter,
            seller,
            listing,
            tracking,
            oldest_first,
            limit,
            max,
        } => {
            let mut request = pb::SearchRequest {
                filter: Some(filter.to_pb()?),
                seller: seller.unwrap_or_default(),
                listing_id: listing.unwrap_or_default(),
                tracking_number: tracking.unwrap_or_default(),
                stored_from: None,
                stored_to: None,
                oldest_first,
                limit,
                cursor: String::new(),
            };
            let mut printed = 0;
            loop {
                let page = clients.exchange.search(request.clone()).await?.into_inner();
                for message in &page.messages {
                    if printed == max {
                        return Ok(());
                    }
                    print_line(
                        out,
                        &crate::pb::json::to_json_value("ipex.v1.StoredMessage", message),
                    )?;
                    printed += 1;
                }
                if page.next_cursor.is_empty() || printed == max {
                    return Ok(());
                }
                request.cursor = page.next_cursor;
            }
        }
        Command::Export {
            command: ExportCommand::DsaSor { since, out: dir },
        } => {
            let since = since
                .map(|t| report::parse_time("--since", &t))
                .transpose()?;
            let written = dsa::export(&mut clients, since, &dir).await?;
            print(out, &written)
        }
        Command::Report {
            command:
                ReportCommand::TakedownTimes {
                    platform,
                    from,
                    to,
                    after_seq,
                    out: file,
                    svg,
                },
        } => {
            let request = pb::GetTakedownTimesRequest {
                platform: platform.unwrap_or_default(),
                from: from.map(|t| report::parse_time("--from", &t)).transpose()?,
                to: to.map(|t| report::parse_time("--to", &t)).transpose()?,
                after_seq,
            };
            let summary =
                report::takedown_times(&mut clients, request, &file, svg.as_deref()).await?;
            print(out, &summary)
        }
        Command::Audit { command } => {
            let audit_client = &mut clients.audit;
            let report = match command {
                AuditCommand::Checkpoint { refresh, witnessed } => {
                    let r = audit_client
                        .get_checkpoint(pb::GetCheckpointRequest { refresh, witnessed })
                        .await?;
                    crate::pb::json::to_json_value("ipex.v1.GetCheckpointResponse", r.get_ref())
                }
                AuditCommand::Verify {
                    state,
                    verifier_key,
                    proofs,
                    witnesses,
                    quorum,
                    ..
                } => {
                    let witnesses = audit::Witnesses::parse(&witnesses, quorum)?;
                    audit::verify_online(
                        audit_client,
                        &state,
                        verifier_key.as_deref(),
                        proofs,
                        &witnesses,
                    )
                    .await?
                }
                AuditCommand::Export { out: file } => audit::export(audit_client, &file).await?,
                AuditCommand::VerifyReport { .. } => unreachable!("handled before connecting"),
            };
            print(out, &report)
        }
        Command::Health { service } => {
            use tonic_health::pb::health_check_response::ServingStatus;
            let mut health =
                tonic_health::pb::health_client::HealthClient::new(clients.channel.clone());
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.clone(),
                })
                .await?;
            let status = ServingStatus::try_from(r.get_ref().status)
                .unwrap_or(ServingStatus::Unknown)
                .as_str_name();
            print(
                out,
                &serde_json::json!({ "service": service, "status": status }),
            )?;
            if status == ServingStatus::Serving.as_str_name() {
                Ok(())
            } else {
                Err(CliError::Unhealthy(format!("{service:?} is {status}")))
            }
        }
        Command::Certs { .. }
        | Command::Message { .. }
        | Command::Token { .. }
        | Command::Pseudonym { .. }
        | Command::Bench(_)
        | Command::Store { .. } => {
            unreachable!("handled before connecting")
        }
    }
}
