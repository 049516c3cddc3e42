//! The command line of `ipex`: every flag and subcommand, as clap parses them.

use super::client::ClientTls;
use super::error::CliError;
use crate::dev::DEV_CERTS_DIR;
use crate::domain::policy::kind_from_name;
use crate::pb;
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

/// `ipex export` subcommands.
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Your platform's takedown outcomes that restricted something, as statements of reasons
    /// in the shape the DSA Transparency Database API takes (`POST /api/v1/statements`):
    /// files of at most 100 (`statements-0001.json`, …) and `problems.json`, naming each
    /// outcome that lacks a field the API requires.
    DsaSor {
        /// Only outcomes stored at or after this time (RFC 3339, or a date).
        #[arg(long)]
        since: Option<String>,
        /// The directory to write (created if missing; earlier statements files are replaced).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `ipex report` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// How long platforms took to act on the takedown notices and listing alerts between you
    /// and them: each notice's acceptance and the platform's first outcome, with audit leaves
    /// and inclusion proofs against one signed checkpoint, and a summary per platform and per
    /// status. Writes the report (proto3 JSON of ipex.v1.TakedownTimesReport) to --out and
    /// prints its summary; `ipex audit verify-report` checks it offline.
    TakedownTimes {
        /// Only the notices to this platform.
        #[arg(long)]
        platform: Option<String>,
        /// Only notices accepted at or after this time (RFC 3339, or a date: 2026-11-01).
        #[arg(long)]
        from: Option<String>,
        /// Only notices accepted before this time (RFC 3339, or a date).
        #[arg(long)]
        to: Option<String>,
        /// Only notices after this sequence number: a truncated report's next_after_seq.
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// The report file to write.
        #[arg(long)]
        out: PathBuf,
        /// Also draw the distribution of delays per platform (an ECDF) as SVG to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// `ipex message` subcommands.
#[derive(Subcommand, Debug)]
pub enum MessageCommand {
    /// Checks the sender's signature on a stored message, offline, against the sender's
    /// public key alone. FILE is what `ipex get` prints (or a stored message, or an envelope).
    Verify {
        /// The message, as JSON.
        file: PathBuf,
        /// The sender's public key (SPKI PEM, Ed25519 or EC P-256).
        #[arg(long, value_name = "PUBLIC_KEY_PEM")]
        key: PathBuf,
    },
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
        /// Sign each envelope with this private key (PKCS#8 PEM, Ed25519 or EC P-256) of your
        /// organisation, one of the registry's `signing_keys` of your participant.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Submits the envelopes of the files as one all-or-nothing batch.
    SubmitBatch {
        /// Envelope files; a file may also hold a JSON array of envelopes.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Sign each envelope with this private key (PKCS#8 PEM, Ed25519 or EC P-256).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Exports for others: statements of reasons for the EU DSA Transparency Database.
    Export {
        /// What to export.
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Reports over the exchange, with proofs anyone can check offline.
    Report {
        /// Which report.
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Works with stored messages offline, without a gateway.
    Message {
        /// What to do.
        #[command(subcommand)]
        command: MessageCommand,
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
    /// Shows the case thread of a message: everything you may read that is linked to it (by
    /// refs, listing alerts and seller matches, shared seller, listing, tracking number or
    /// case reference), in time order, with each link's reason.
    Case {
        /// Sender of the message.
        #[arg(long)]
        sender: String,
        /// Sender's id of the message.
        #[arg(long)]
        id: String,
        /// Most messages in the thread, 1 to 500.
        #[arg(long, default_value_t = 100)]
        limit: u32,
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
    /// Computes a seller pseudonym locally: the lower-case hex HMAC-SHA256 of the identifier
    /// in its normal form under the community key (which never reaches the gateway).
    Pseudonym {
        /// What the identifier is: email, phone (E.164) or payment (an IBAN).
        #[arg(long = "type", value_name = "TYPE", value_enum)]
        kind: PseudonymKind,
        /// File holding the community key: 64 hex digits on one line.
        #[arg(long)]
        key_file: PathBuf,
        /// The identifier, as written (it is normalised first).
        value: String,
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
    Bench(BenchArgs),
    /// Offline operations on the data directory of a stopped gateway.
    Store {
        /// What to do.
        #[command(subcommand)]
        command: StoreCommand,
    },
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

/// Message kinds as `--kind` names them (`seizure-notification`, `SELLER_FLAG`, `notice`…).
pub fn parse_kinds(names: &[String]) -> Result<Vec<i32>, CliError> {
    names
        .iter()
        .map(|k| {
            kind_from_name(k)
                .map(|k| k as i32)
                .ok_or_else(|| CliError::Input(format!("unknown kind {k:?}")))
        })
        .collect()
}

impl FilterArgs {
    /// The proto filter.
    pub fn to_pb(&self) -> Result<pb::Filter, CliError> {
        let kinds = parse_kinds(&self.kinds)?;
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
        /// The newest checkpoint the peer gateways cosigned, with their cosignature lines.
        #[arg(long, conflicts_with = "refresh")]
        witnessed: bool,
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
        /// (Not `--key`: that is the client's private key.)
        #[arg(long = "verifier-key", value_name = "VKEY")]
        verifier_key: Option<String>,
        /// How many of your own most recent leaves to check with inclusion proofs (online).
        #[arg(long, default_value_t = 20)]
        proofs: usize,
        /// A witness's cosignature verifier key (`<name>+<id>+<key>`, C2SP tlog-cosignature
        /// Ed25519), or a file holding it; repeat for each witness. The checkpoint verified is
        /// then the newest the gateway's peers cosigned (online).
        #[arg(long = "witness", value_name = "VKEY", conflicts_with_all = ["file", "full"])]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned the checkpoint; default: all.
        #[arg(long, requires = "witnesses")]
        quorum: Option<usize>,
        /// Check the whole log of a stopped gateway's data directory instead (offline): every
        /// record's checksum, every leaf re-hashed, every checkpoint against the tree (and
        /// its signature, with --verifier-key), every tile against the leaves.
        #[arg(long, conflicts_with = "file")]
        full: bool,
        /// The data directory --full checks.
        #[arg(long, default_value = "data", requires = "full")]
        data_dir: PathBuf,
    },
    /// Checks a takedown-times report offline: the checkpoint's signature, every leaf's
    /// inclusion proof, every timestamp against its leaf, every envelope against its digest,
    /// every figure and the summaries. Names the entry at fault; exit status 1 then.
    VerifyReport {
        /// The report (as `ipex report takedown-times --out` wrote it).
        file: PathBuf,
        /// The gateway's checkpoint verifier key (`<name>+<id>+<key>`, as `ipexd` logs it at
        /// start and `ipex audit checkpoint` prints it), or a file holding it.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: PathBuf,
    },
    /// Writes the log to a file: a checkpoint, every leaf hash, and the data you may see.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// What a pseudonymised identifier is.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PseudonymKind {
    /// An e-mail address.
    Email,
    /// A phone number, E.164.
    Phone,
    /// A payment account: an IBAN.
    Payment,
}

impl From<PseudonymKind> for crate::pb::PseudonymType {
    fn from(kind: PseudonymKind) -> Self {
        match kind {
            PseudonymKind::Email => crate::pb::PseudonymType::Email,
            PseudonymKind::Phone => crate::pb::PseudonymType::Phone,
            PseudonymKind::Payment => crate::pb::PseudonymType::PaymentAccount,
        }
    }
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

/// Store commands (the gateway must be stopped: the store is opened by one process).
#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Rebuilds the index (idempotency keys, inboxes, search postings, cursors, tiles) from
    /// the exchange log, checking every checkpoint in the log against the tree.
    Reindex {
        /// The data directory.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Converts a store of the old layout (one sled tree) into a new data directory, checking
    /// every receipt against the original. The old directory is left as it is.
    Migrate {
        /// The old data directory.
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (must not exist, or be empty).
        #[arg(long)]
        to: PathBuf,
    },
}

/// Certificate commands.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Creates the development PKI and registry under --certs-dir if missing.
    Init {
        /// Also create what gateway `ID` needs to peer — its checkpoint key (origin
        /// `ipex.local/<ID>`), gateway certificate and witness key — and print what its peers
        /// put in their `[[peers]]` table for it.
        #[arg(long, value_name = "ID")]
        gateway_id: Option<String>,
    },
}

impl IdentityArgs {
    /// The TLS identity these flags select.
    pub fn tls(&self) -> Result<ClientTls, CliError> {
        let dev = crate::dev::paths::DevPaths {
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

/// Flags of `ipex bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Calls in flight at each step, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub concurrency: Vec<usize>,
    /// How long each step (one call, one concurrency) runs: e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s")]
    pub duration: String,
    /// Run each step for this many calls instead of --duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Connections the calls are spread over (a connection carries at most 200 calls at once).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Unmeasured calls of both kinds before the first step: e.g. 1s, 0s to skip.
    #[arg(long, default_value = "1s")]
    pub warmup: String,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Private key (PKCS#8 PEM, Ed25519 or EC P-256) that signs the seizures of the `signed`
    /// step. Default: the sender's development signing key (a local gateway's, or
    /// `<--certs-dir>/<--as>.sign.key`); without one the step is left out.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}
