//! A real gateway for tests: certificates generated here, a sled store in a temporary
//! directory, mutual TLS on 127.0.0.1:0, and clients for each participant.
#![allow(dead_code)]

pub mod process;

use ipex::cli::client::{ClientTls, Clients};
use ipex::dev::pki::{Ca, Issued};
use ipex::ops::config::{Config, Sources};
use ipex::pb;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The participants every test gateway registers: (id, role, country).
pub const PARTICIPANTS: &[(&str, &str, &str)] = &[
    ("customs-nl", "CUSTOMS", "NL"),
    ("customs-fr", "CUSTOMS", "FR"),
    ("market-a", "PLATFORM", "IE"),
    ("market-b", "PLATFORM", "DE"),
    ("express-b", "CARRIER", "BE"),
    ("brand-c", "RIGHT_HOLDER", "FR"),
    ("rilo-we", "PARTNER", ""),
];

/// A CA and the certificates issued for one test.
pub struct Pki {
    pub ca: Ca,
    pub server: Issued,
    pub participants: HashMap<String, Issued>,
}

impl Pki {
    pub fn generate() -> Pki {
        let ca = Ca::generate("ipex test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        let participants = PARTICIPANTS
            .iter()
            .map(|(id, _, _)| (id.to_string(), ca.issue_participant(id).unwrap()))
            .collect();
        Pki {
            ca,
            server,
            participants,
        }
    }

    /// TLS settings of a client presenting `issued`.
    pub fn client_tls(&self, issued: &Issued) -> ClientTls {
        ClientTls {
            cert_pem: issued.cert_pem.clone(),
            key_pem: issued.key_pem.clone(),
            ca_pem: self.ca.issued.cert_pem.clone(),
            server_name: "localhost".into(),
        }
    }
}

/// Registry TOML for the test participants; `extra` is appended verbatim. Tokens are not
/// required of them (tests/tokens.rs turns that on where it is the subject). Most tests count
/// the messages they submit, so their customs administrations raise no listing alerts
/// (tests/enforcement.rs, the subject, uses [`enforcing_registry_toml`]).
pub fn registry_toml(extra: &str) -> String {
    registry_of(extra, false)
}

/// Registry TOML for the test participants with listing alerts raised, as by default.
pub fn enforcing_registry_toml(extra: &str) -> String {
    registry_of(extra, true)
}

fn registry_of(extra: &str, alerts: bool) -> String {
    let mut out = String::new();
    for (id, role, country) in PARTICIPANTS {
        out.push_str(&format!(
            "[[participant]]\nid = \"{id}\"\nrole = \"{role}\"\ncountry = \"{country}\"\ndisplay_name = \"{id}\"\nrequire_token = false\n"
        ));
        // A marketplace's listings are on its own host: market-a.example.
        if *role == "PLATFORM" {
            out.push_str(&format!("domains = [\"{id}.example\"]\n"));
        }
        if *role == "CUSTOMS" && !alerts {
            out.push_str("listing_alerts = false\n");
        }
        out.push('\n');
    }
    out.push_str(extra);
    out
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub config: Config,
    pub pki: std::sync::Arc<Pki>,
    pub dir: PathBuf,
    /// Keeps the temporary directory alive as long as the gateway.
    files: Option<std::sync::Arc<tempfile::TempDir>>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ipex::server::ServeError>>>,
}

/// Files of a test gateway, kept across restarts.
pub struct Setup {
    pub tmp: std::sync::Arc<tempfile::TempDir>,
    pub pki: std::sync::Arc<Pki>,
    pub config: Config,
}

impl Setup {
    /// A fresh PKI, registry and data directory.
    pub fn new() -> Setup {
        Setup::with_registry(&registry_toml(""))
    }

    /// A fresh PKI, registry and data directory, with listing alerts and seller matching on,
    /// as a gateway runs by default.
    pub fn enforcing() -> Setup {
        let mut setup = Setup::with_registry(&enforcing_registry_toml(""));
        setup.config.matching.enabled = true;
        setup
    }

    pub fn with_registry(registry: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::generate();
        let dir = tmp.path();
        std::fs::write(dir.join("ca.pem"), &pki.ca.issued.cert_pem).unwrap();
        std::fs::write(dir.join("server.pem"), &pki.server.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &pki.server.key_pem).unwrap();
        std::fs::write(dir.join("registry.toml"), registry).unwrap();
        let mut config = ipex::dev::config(dir);
        config.dev_mode = false;
        let signer = ipex::log::note::NoteSigner::generate(&config.origin()).unwrap();
        std::fs::write(dir.join("audit.key"), signer.private_key()).unwrap();
        config.data_dir = dir.join("data");
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Tests run side by side: none takes the development metrics port.
        config.metrics_listen = None;
        // Most tests count the messages they submit: no seller matches unless enforcing.
        config.matching.enabled = false;
        Setup {
            tmp: std::sync::Arc::new(tmp),
            pki: std::sync::Arc::new(pki),
            config,
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Starts a gateway on these files.
    pub async fn start(&self) -> Gateway {
        self.start_from(self.config.clone().into()).await
    }

    /// Starts a gateway on these certificates with a configuration built from `sources`
    /// (a file, an environment of the test's own, flags).
    pub async fn start_from(&self, sources: Sources) -> Gateway {
        let mut gw = Gateway::start_from(sources, self.pki.clone()).await;
        gw.files = Some(self.tmp.clone());
        gw
    }
}

impl Gateway {
    pub async fn start(config: Config, pki: std::sync::Arc<Pki>) -> Gateway {
        Gateway::start_from(config.into(), pki).await
    }

    /// Starts a gateway whose configuration is built from `sources`, and again from them on
    /// every reload.
    pub async fn start_from(sources: Sources, pki: std::sync::Arc<Pki>) -> Gateway {
        let config = sources.build().unwrap();
        // Through the test writer, so that only failing tests show the gateway's log.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            ipex::server::run(listener, sources, async {
                let _ = rx.await;
            })
            .await
        });
        Gateway {
            addr,
            dir: config.data_dir.clone(),
            config,
            pki,
            files: None,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Clients acting as `participant`.
    pub async fn client(&self, participant: &str) -> Clients {
        let issued = &self.pki.participants[participant];
        self.client_with(&self.pki.client_tls(issued)).await
    }

    /// Clients with explicit TLS settings.
    pub async fn client_with(&self, tls: &ClientTls) -> Clients {
        let channel = ipex::cli::client::connect(&self.endpoint(), tls)
            .await
            .unwrap();
        Clients::new(channel)
    }

    /// Stops the gateway and waits until its store is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// Reads an example message shipped in `examples/messages/`.
pub fn example(name: &str) -> pb::Envelope {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/messages")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    ipex::pb::json::envelope_from_json(&text).unwrap()
}

/// The sample takedown notice as `id`, to `platform` about a listing on its own host.
pub fn notice_to(id: &str, platform: &str) -> pb::Envelope {
    let mut e = example("takedown-notice.json");
    e.id = id.into();
    e.recipients = vec![platform.into()];
    let Some(pb::envelope::Payload::TakedownNotice(n)) = &mut e.payload else {
        unreachable!("the sample is a takedown notice")
    };
    n.platform = platform.into();
    if let Some(seller) = &mut n.seller {
        seller.platform = platform.into();
    }
    n.listing_urls = vec![format!("https://{platform}.example/listing/{id}")];
    e
}

/// Submits one envelope.
pub async fn submit(
    clients: &mut Clients,
    envelope: pb::Envelope,
) -> Result<pb::Receipt, tonic::Status> {
    clients
        .exchange
        .submit(pb::SubmitRequest {
            envelope: Some(envelope),
        })
        .await
        .map(|r| r.into_inner().receipt.unwrap())
}

/// The field paths of a status's BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The whole inbox of the client's participant.
pub async fn inbox(clients: &mut Clients) -> Vec<pb::StoredMessage> {
    clients
        .exchange
        .list_inbox(pb::ListInboxRequest {
            after: 0,
            limit: 1000,
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// Gets one message by sender and id.
pub async fn get(
    clients: &mut Clients,
    sender: &str,
    id: &str,
) -> Result<pb::StoredMessage, tonic::Status> {
    clients
        .exchange
        .get(pb::GetRequest {
            key: Some(pb::get_request::Key::Ref(pb::MessageRef {
                sender: sender.into(),
                id: id.into(),
            })),
        })
        .await
        .map(|r| r.into_inner().message.unwrap())
}

/// SHA-256 of an issued certificate (DER), hex: what pins and deny lists name.
pub fn fingerprint(issued: &Issued) -> String {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

/// Polls `check` every 25 ms until it returns true or `seconds` pass.
pub async fn eventually<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

/// Flips the last bit of the record of audit leaf `index` in the log of the stopped store in
/// `data_dir`; returns the record's segment and offset.
pub fn flip_leaf_bit(data_dir: &Path, index: u64) -> (u32, u64) {
    use ipex::log::record::{self, Body, Frames};
    use std::os::unix::fs::FileExt;
    let log = data_dir.join("log");
    for segment in ipex::storage::segments::list(&log).unwrap() {
        let path = log.join(format!("{segment:08}.seg"));
        let bytes = std::fs::read(&path).unwrap();
        let start = ipex::storage::segments::FIRST_OFFSET;
        for frame in Frames::new(&bytes[start as usize..], start) {
            let (offset, payload) = frame.unwrap();
            if let Some(Body::Leaf(leaf)) = record::decode(payload, offset).unwrap().body {
                if leaf.index == index {
                    let last = offset + (record::HEADER_LEN + payload.len()) as u64 - 1;
                    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    file.write_all_at(&[bytes[last as usize] ^ 1], last)
                        .unwrap();
                    return (segment, offset);
                }
            }
        }
    }
    panic!("leaf {index} is not in the log");
}

/// The bytes of the trailers that carry `status` at most: `grpc-status`, `grpc-message`
/// percent-encoded as gRPC does, `grpc-status-details-bin` in base64, and the other
/// metadata.
pub fn trailer_bytes(status: &tonic::Status) -> usize {
    let message: usize = status
        .message()
        .bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                1
            } else {
                3
            }
        })
        .sum();
    let details = status.details().len().div_ceil(3) * 4;
    let other: usize = status
        .metadata()
        .as_ref()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    "grpc-status".len()
        + 2
        + "grpc-message".len()
        + message
        + "grpc-status-details-bin".len()
        + details
        + other
}

/// The gateway's `/metrics` response at `addr` (plain HTTP/1.0), headers and body.
pub async fn metrics_page(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

/// The value of the first metric sample at `addr` that starts with `sample` (its name, and
/// labels if given).
pub async fn metric(addr: &str, sample: &str) -> Option<f64> {
    metrics_page(addr)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}
