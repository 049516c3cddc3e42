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
    /// Gateway address.
    #[arg(
        long,
        env = "IPEX_GATEWAY",
        default_value = "https://127.0.0.1:50051",
        global = true
    )]
    pub gateway: String,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
    /// The exchange log: checkpoints, verification, export.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Certificates for development.
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: CertsCommand,
    },
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
    let tls = cli.identity.tls()?;
    let channel = client::connect(&cli.gateway, &tls).await?;
    let mut clients = Clients::new(channel);
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
        Command::Audit { command } => {
            let mut audit = pb::audit_client::AuditClient::new(clients.channel.clone());
            let report = match command {
                AuditCommand::Checkpoint { refresh } => {
                    let r = audit
                        .get_checkpoint(pb::GetCheckpointRequest { refresh })
                        .await?;
                    crate::json::to_json_value("ipex.v1.GetCheckpointResponse", r.get_ref())
                }
                AuditCommand::Verify {
                    state, key, proofs, ..
                } => {
                    crate::cli_audit::verify_online(&mut audit, &state, key.as_deref(), proofs)
                        .await?
                }
                AuditCommand::Export { out: file } => {
                    crate::cli_audit::export(&mut audit, &file).await?
                }
            };
            print(out, &report)
        }
        Command::Certs { .. } => unreachable!("handled before connecting"),
    }
}
