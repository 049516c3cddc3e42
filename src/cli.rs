//! The `ipex` command-line client and admin tool. It lives in the library so that tests drive
//! the same code as users; `src/bin/ipex.rs` only calls [`main`].

use crate::client::{self, ClientTls, Clients};
use crate::config::DEV_CERTS_DIR;
use crate::pb;
use crate::policy::kind_from_name;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The ipex command-line client. Output is JSON.
#[derive(Parser, Debug)]
#[command(name = "ipex", version, about)]
pub struct Cli {
    /// Gateway address [default: https://127.0.0.1:50051; `bench` without it starts its own].
    #[arg(long, env = "IPEX_GATEWAY", global = true)]
    pub gateway: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The gateway address when `--gateway` is not given.
pub const DEFAULT_GATEWAY: &str = "https://127.0.0.1:50051";

impl Cli {
    /// The gateway address: `--gateway`, else [`DEFAULT_GATEWAY`].
    pub fn gateway(&self) -> &str {
        self.gateway.as_deref().unwrap_or(DEFAULT_GATEWAY)
    }
}

/// Who the client is.
#[derive(Args, Debug, Clone)]
pub struct IdentityArgs {
    /// Act as this development participant (its certificate under --certs-dir).
    #[arg(long = "as", env = "IPEX_AS", global = true)]
    pub as_participant: Option<String>,
    /// Client certificate (PEM), instead of --as.
    #[arg(long, env = "IPEX_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with --cert.
    #[arg(long, env = "IPEX_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// CA certificate the gateway's certificate must chain to (PEM). Default: the dev CA.
    #[arg(long, env = "IPEX_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Directory of the development PKI.
    #[arg(long, env = "IPEX_DEV_CERTS_DIR", default_value = DEV_CERTS_DIR, global = true)]
    pub certs_dir: PathBuf,
    /// Name the gateway's certificate must carry.
    #[arg(
        long,
        env = "IPEX_SERVER_NAME",
        default_value = "localhost",
        global = true
    )]
    pub server_name: String,
    /// Officer token sent as `authorization: Bearer <token>` with every call.
    #[arg(long, env = "IPEX_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Who the gateway takes you to be.
    Whoami,
    /// Every registered participant.
    Participants,
    /// Submits envelopes from JSON files (proto3 JSON of ipex.v1.Envelope), one call each.
    Submit {
        /// Envelope files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Submits the envelopes of the files as one all-or-nothing batch.
    SubmitBatch {
        /// Envelope files; a file may also hold a JSON array of envelopes.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Fetches one message, by sequence number or by sender and id.
    Get {
        /// Global sequence number.
        #[arg(long, conflicts_with_all = ["sender", "id"])]
        seq: Option<u64>,
        /// Sender of the message.
        #[arg(long, requires = "id")]
        sender: Option<String>,
        /// Sender's id of the message.
        #[arg(long, requires = "sender")]
        id: Option<String>,
    },
    /// Lists your inbox.
    Inbox {
        /// List after this inbox number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Page size, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only these kinds (e.g. seizure-notification); repeatable.
        #[arg(long = "kind")]
        kinds: Vec<String>,
    },
    /// Receives matching messages as they arrive, as JSON lines; acknowledges them when
    /// the subscription is durable.
    Subscribe {
        #[command(flatten)]
        filter: FilterArgs,
        /// A durable subscription: resumes after its last acknowledged message.
        #[arg(long)]
        durable: Option<String>,
        /// Start at this sequence number instead of with the next new message.
        #[arg(long)]
        from_seq: Option<u64>,
        /// Stop after this many deliveries.
        #[arg(long)]
        max: Option<u64>,
        /// Do not acknowledge deliveries.
        #[arg(long)]
        no_ack: bool,
    },
    /// Searches every message you may read; prints matches as JSON lines.
    Search {
        #[command(flatten)]
        filter: FilterArgs,
        /// A seller: platform seller id or pseudonym.
        #[arg(long)]
        seller: Option<String>,
        /// A listing id.
        #[arg(long)]
        listing: Option<String>,
        /// A tracking number or UPU item id.
        #[arg(long)]
        tracking: Option<String>,
        /// Oldest first instead of newest first.
        #[arg(long)]
        oldest_first: bool,
        /// Page size, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow the pages up to this many messages.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// The exchange log: checkpoints, verification, export.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Officer tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Asks the gateway's grpc.health.v1 service whether it serves; exit status 0 when it
    /// does, 1 otherwise (for probes). Any certificate the CA issued may ask.
    Health {
        /// The service to ask about, e.g. ipex.v1.Exchange; empty for the whole gateway.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Measures a gateway: the grpc.health.v1 Check baseline against durable Submit of
    /// seizure notifications, at several numbers of calls in flight. Without --gateway it
    /// starts its own on a temporary store with a generated PKI.
    Bench(crate::bench::BenchArgs),
    /// Certificates for development.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// Filters shared by `subscribe` and `search`; each flag may be repeated.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Message kinds: seizure, notice, outcome, flag, alert, request, response (or full names).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// HS code prefixes: chapter (64), heading (6403), ...
    #[arg(long = "hs")]
    pub hs: Vec<String>,
    /// Countries of origin.
    #[arg(long = "origin")]
    pub origin: Vec<String>,
    /// Countries of destination.
    #[arg(long = "destination")]
    pub destination: Vec<String>,
    /// Countries where seizures took place.
    #[arg(long = "location")]
    pub location: Vec<String>,
    /// Brands.
    #[arg(long = "brand")]
    pub brands: Vec<String>,
    /// Carrier participant ids.
    #[arg(long = "carrier")]
    pub carriers: Vec<String>,
    /// Platform participant ids.
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
    /// Least TLP: clear, green, amber, amber-strict, red.
    #[arg(long)]
    pub min_tlp: Option<String>,
}

impl FilterArgs {
    /// The proto filter.
    pub fn to_pb(&self) -> Result<pb::Filter, CliError> {
        let kinds = self
            .kinds
            .iter()
            .map(|k| {
                kind_from_name(k)
                    .map(|k| k as i32)
                    .ok_or_else(|| CliError::Input(format!("unknown kind {k:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_tlp = match &self.min_tlp {
            None => 0,
            Some(t) => {
                let name = format!("TLP_{}", t.trim().to_ascii_uppercase().replace('-', "_"));
                pb::Tlp::from_str_name(&name)
                    .ok_or_else(|| CliError::Input(format!("unknown TLP {t:?}")))?
                    as i32
            }
        };
        Ok(pb::Filter {
            kinds,
            hs_prefixes: self.hs.clone(),
            origin_countries: self.origin.clone(),
            destination_countries: self.destination.clone(),
            location_countries: self.location.clone(),
            brands: self.brands.clone(),
            carriers: self.carriers.clone(),
            platforms: self.platforms.clone(),
            min_tlp,
        })
    }
}

/// Audit log commands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Prints the latest signed checkpoint and the gateway's verifier key.
    Checkpoint {
        /// Ask the gateway to sign a checkpoint covering every leaf so far.
        #[arg(long)]
        refresh: bool,
    },
    /// Verifies the log: the checkpoint signature, every leaf against the root, your own
    /// leaves' data and inclusion proofs, and consistency with the checkpoint verified last
    /// time. Online against the gateway, or offline with --file.
    Verify {
        /// Verify an export file instead of the live gateway.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Where the last verified checkpoint is kept between runs.
        #[arg(long, default_value = "ipex-audit-state.json")]
        state: PathBuf,
        /// The gateway's verifier key (`<name>+<id>+<key>`); default: the one in the state
        /// file, else the one the gateway (or the export) presents, trusted on first use.
        #[arg(long)]
        key: Option<String>,
        /// How many of your own most recent leaves to check with inclusion proofs (online).
        #[arg(long, default_value_t = 20)]
        proofs: usize,
    },
    /// Writes the log to a file: a checkpoint, every leaf hash, and the data you may see.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Token commands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Prints an officer token signed with the development token key of the --as participant
    /// and bound to its development certificate.
    Issue {
        /// The officer or system acting (`sub`).
        #[arg(long)]
        sub: String,
        /// Scopes, comma separated: exchange:submit, exchange:read, subscribe, audit:read.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "exchange:submit,exchange:read,subscribe,audit:read"
        )]
        scope: Vec<String>,
        /// Lifetime: seconds, or with a unit, e.g. 900s, 15m, 1h.
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// The gateway's id (`aud`).
        #[arg(long, default_value = "ipex-dev")]
        audience: String,
    },
}

/// Certificate commands.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Creates the development PKI and registry under --certs-dir if missing.
    Init,
}

/// A CLI failure: printed on stderr, exit code 1 (2 for usage errors, from clap).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading input or certificates.
    #[error("{0}")]
    Input(String),
    /// Connecting.
    #[error(transparent)]
    Connect(#[from] client::ClientError),
    /// The gateway refused the call.
    #[error("{}", describe_status(.0))]
    Status(#[from] tonic::Status),
    /// The audit log did not verify.
    #[error("audit log verification failed: {0}")]
    Verify(#[from] crate::audit::verify::VerifyError),
    /// The gateway answered that it does not serve.
    #[error("the gateway does not serve: {0}")]
    Unhealthy(String),
}

/// A refused call as the user reads it: code, message and each field violation.
pub fn describe_status(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_details_bad_request() {
        Some(bad) if !bad.field_violations.is_empty() => {
            let mut out = format!("{:?}:", status.code());
            for v in bad.field_violations {
                out.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
            out
        }
        _ => format!("{:?}: {}", status.code(), status.message()),
    }
}

impl IdentityArgs {
    /// The TLS identity these flags select.
    pub fn tls(&self) -> Result<ClientTls, CliError> {
        let dev = crate::pki::DevPaths {
            dir: self.certs_dir.clone(),
        };
        let ca = self.ca.clone().unwrap_or_else(|| dev.ca());
        let (cert, key) = match (&self.as_participant, &self.cert, &self.key) {
            (Some(id), None, None) => (dev.cert(id), dev.key(id)),
            (None, Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (Some(_), _, _) => {
                return Err(CliError::Input(
                    "give either --as or --cert with --key, not both".into(),
                ))
            }
            _ => {
                return Err(CliError::Input(
                    "say who you are: --as <participant> (development) or --cert and --key".into(),
                ))
            }
        };
        Ok(ClientTls::from_files(&cert, &key, &ca, &self.server_name)?)
    }
}

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
                    &crate::json::to_json_value("ipex.v1.Delivery", &delivery),
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

fn read_envelopes(path: &PathBuf, allow_array: bool) -> Result<Vec<pb::Envelope>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    let parse = |json: &str| {
        crate::json::envelope_from_json(json)
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

/// Runs one command, writing JSON to `out`.
pub async fn run(cli: Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    if let Command::Certs {
        command: CertsCommand::Init,
    } = &cli.command
    {
        let created = crate::pki::ensure_dev_pki(&cli.identity.certs_dir)
            .map_err(|e| CliError::Input(e.to_string()))?;
        return print(
            out,
            &serde_json::json!({
                "certs_dir": cli.identity.certs_dir.display().to_string(),
                "created": created,
            }),
        );
    }
    if let Command::Audit {
        command:
            AuditCommand::Verify {
                file: Some(file),
                state,
                key,
                ..
            },
    } = &cli.command
    {
        let report = crate::cli_audit::verify_file(file, state, key.as_deref())?;
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
        let token = issue_dev_token(&cli.identity, sub, scope, ttl, audience)?;
        return writeln!(out, "{token}").map_err(|e| CliError::Input(e.to_string()));
    }
    if let Command::Bench(args) = &cli.command {
        return crate::bench::run(cli.gateway.as_deref(), &cli.identity, args, out).await;
    }
    let tls = cli.identity.tls()?;
    let channel = client::connect(cli.gateway(), &tls).await?;
    let bearer = client::Bearer::new(cli.identity.token.as_deref())?;
    let mut clients = Clients::with_bearer(channel, bearer);
    match cli.command {
        Command::Whoami => {
            let r = clients.participants.who_am_i(pb::WhoAmIRequest {}).await?;
            print(
                out,
                &crate::json::to_json_value("ipex.v1.WhoAmIResponse", r.get_ref()),
            )
        }
        Command::Participants => {
            let r = clients
                .participants
                .list(pb::ListParticipantsRequest {})
                .await?;
            print(
                out,
                &crate::json::to_json_value("ipex.v1.ListParticipantsResponse", r.get_ref()),
            )
        }
        Command::Submit { files } => {
            for file in &files {
                for envelope in read_envelopes(file, false)? {
                    let r = clients
                        .exchange
                        .submit(pb::SubmitRequest {
                            envelope: Some(envelope),
                        })
                        .await?;
                    print(
                        out,
                        &crate::json::to_json_value("ipex.v1.SubmitResponse", r.get_ref()),
                    )?;
                }
            }
            Ok(())
        }
        Command::SubmitBatch { files } => {
            let mut envelopes = Vec::new();
            for file in &files {
                envelopes.extend(read_envelopes(file, true)?);
            }
            let r = clients
                .exchange
                .submit_batch(pb::SubmitBatchRequest { envelopes })
                .await?;
            print(
                out,
                &crate::json::to_json_value("ipex.v1.SubmitBatchResponse", r.get_ref()),
            )
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
            print(
                out,
                &crate::json::to_json_value("ipex.v1.GetResponse", r.get_ref()),
            )
        }
        Command::Inbox {
            after,
            limit,
            kinds,
        } => {
            let kinds = kinds
                .iter()
                .map(|k| {
                    kind_from_name(k)
                        .map(|k| k as i32)
                        .ok_or_else(|| CliError::Input(format!("unknown kind {k:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let r = clients
                .exchange
                .list_inbox(pb::ListInboxRequest {
                    after,
                    limit,
                    kinds,
                })
                .await?;
            print(
                out,
                &crate::json::to_json_value("ipex.v1.ListInboxResponse", r.get_ref()),
            )
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
                        &crate::json::to_json_value("ipex.v1.StoredMessage", message),
                    )?;
                    printed += 1;
                }
                if page.next_cursor.is_empty() || printed == max {
                    return Ok(());
                }
                request.cursor = page.next_cursor;
            }
        }
        Command::Audit { command } => {
            let audit = &mut clients.audit;
            let report = match command {
                AuditCommand::Checkpoint { refresh } => {
                    let r = audit
                        .get_checkpoint(pb::GetCheckpointRequest { refresh })
                        .await?;
                    crate::json::to_json_value("ipex.v1.GetCheckpointResponse", r.get_ref())
                }
                AuditCommand::Verify {
                    state, key, proofs, ..
                } => crate::cli_audit::verify_online(audit, &state, key.as_deref(), proofs).await?,
                AuditCommand::Export { out: file } => {
                    crate::cli_audit::export(audit, &file).await?
                }
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
        Command::Certs { .. } | Command::Token { .. } | Command::Bench(_) => {
            unreachable!("handled before connecting")
        }
    }
}

/// Parses a lifetime: `900`, `900s`, `15m`, `1h`.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, CliError> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| CliError::Input(format!("--ttl {text:?}: expected e.g. 900s, 15m or 1h")))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(CliError::Input(format!(
                "--ttl {text:?}: the unit is s, m or h"
            )))
        }
    };
    Ok(std::time::Duration::from_secs(seconds))
}

/// Mints a development token for the `--as` participant, bound to its certificate.
fn issue_dev_token(
    identity: &IdentityArgs,
    sub: &str,
    scopes: &[String],
    ttl: &str,
    audience: &str,
) -> Result<String, CliError> {
    use rustls::pki_types::pem::PemObject;
    let id = identity.as_participant.as_deref().ok_or_else(|| {
        CliError::Input("token issue needs --as <participant> (development keys)".into())
    })?;
    let dev = crate::pki::DevPaths {
        dir: identity.certs_dir.clone(),
    };
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))
    };
    let signer = crate::token::DevSigner::from_pkcs8_pem(&read(dev.token_key(id))?)
        .map_err(|e| CliError::Input(e.to_string()))?;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(read(dev.cert(id))?.as_bytes())
        .map_err(|e| CliError::Input(format!("{}: {e}", dev.cert(id).display())))?;
    let scopes = scopes
        .iter()
        .map(|s| {
            crate::token::Scope::parse(s.trim())
                .ok_or_else(|| CliError::Input(format!("unknown scope {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    signer
        .mint(
            id,
            sub,
            audience,
            &scopes,
            parse_ttl(ttl)?,
            &crate::token::cert_thumbprint(&cert),
            crate::token::now_unix(),
        )
        .map_err(|e| CliError::Input(e.to_string()))
}
