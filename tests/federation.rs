//! Peered gateways, each a real `ipexd` process with its own development PKI: they witness
//! each other's logs (C2SP tlog-witness, tlog-cosignature), `ipex audit verify --witness …
//! --quorum N` checks the cosignatures, a witness refuses and records a forked checkpoint,
//! and only a peer's own CA can vouch for that peer's gateway certificate.

mod common;

use common::process::{connect, seizure, Ipexd};
use ipex::dev::pki::Ca;
use ipex::federation::peers::Peer;
use ipex::log::cosign::AddCheckpoint;
use ipex::log::note::{Checkpoint, NoteSigner};
use ipex::ops::config::{FederationFiles, PeerConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IPEX: &str = env!("CARGO_BIN_EXE_ipex");

/// One gateway of the federation: its directory, port and what its peers know of it.
struct Node {
    id: &'static str,
    dir: PathBuf,
    port: u16,
    /// `ipex certs init --gateway-id` printed it: id, ca, checkpoint_key, witness_key.
    peer: Value,
}

impl Node {
    fn new(root: &Path, id: &'static str) -> Node {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(IPEX)
            .current_dir(&dir)
            .args(["certs", "init", "--gateway-id", id])
            .env_remove("IPEX_DEV_CERTS_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut peer = printed["peer"].clone();
        // Paths as seen from the other gateways' directories.
        peer["ca"] = dir
            .join(peer["ca"].as_str().unwrap())
            .display()
            .to_string()
            .into();
        let port = free_port();
        Node {
            id,
            dir,
            port,
            peer,
        }
    }

    fn address(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn certs(&self) -> PathBuf {
        self.dir.join("certs/dev")
    }

    /// Writes its configuration, peered with `peers`.
    fn configure(&self, peers: &[&Node]) {
        self.configure_with(peers, false, "");
    }

    /// Writes its configuration, peered with `peers` (exchanging GREEN and CLEAR broadcasts
    /// with them when `broadcasts`), with `extra` TOML at the end.
    fn configure_with(&self, peers: &[&Node], broadcasts: bool, extra: &str) {
        let mut toml = format!(
            r#"dev_mode = true
gateway_id = "{id}"
registry = "certs/dev/registry.toml"

[tls]
cert = "certs/dev/server.pem"
key = "certs/dev/server.key"
client_ca = "certs/dev/ca.pem"

[audit]
signing_key = "certs/dev/audit.key"
checkpoint_interval_ms = 100

[federation]
cosign_interval_ms = 100
peer_timeout_ms = 2000
"#,
            id = self.id
        );
        for peer in peers {
            toml.push_str(&format!(
                "\n[[peers]]\nid = \"{}\"\naddress = \"{}\"\nca = \"{}\"\ncheckpoint_key = \"{}\"\nwitness_key = \"{}\"\n",
                peer.id,
                peer.address(),
                peer.peer["ca"].as_str().unwrap(),
                peer.peer["checkpoint_key"].as_str().unwrap(),
                peer.peer["witness_key"].as_str().unwrap(),
            ));
            if broadcasts {
                toml.push_str("broadcasts = true\n");
            }
        }
        toml.push_str(extra);
        std::fs::write(self.dir.join("ipexd.toml"), toml).unwrap();
    }

    /// Opens participant `id` of its registry to the peers.
    fn open_to_peers(&self, id: &str) {
        let path = self.certs().join("registry.toml");
        let registry = std::fs::read_to_string(&path).unwrap();
        let line = format!("id = \"{id}\"\n");
        assert!(registry.contains(&line), "{registry}");
        std::fs::write(
            &path,
            registry.replacen(&line, &format!("{line}open_to_peers = true\n"), 1),
        )
        .unwrap();
    }

    fn start(&self) -> Ipexd {
        Ipexd::start_at(
            &self.dir,
            &format!("127.0.0.1:{}", self.port),
            &["--config", "ipexd.toml", "--metrics-listen", "127.0.0.1:0"],
        )
    }

    /// Runs the `ipex` client as customs-nl of this gateway.
    fn ipex(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(IPEX);
        cmd.current_dir(&self.dir)
            .args(["--gateway", &self.address(), "--as", "customs-nl"])
            .args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IPEX_") {
                cmd.env_remove(name);
            }
        }
        cmd.output().unwrap()
    }

    fn witness_key(&self) -> String {
        self.peer["witness_key"].as_str().unwrap().to_string()
    }

    /// This gateway's log signer, read from its PKI (to forge checkpoints of its log).
    fn log_signer(&self) -> NoteSigner {
        let text = std::fs::read_to_string(self.certs().join("audit.key")).unwrap();
        NoteSigner::from_private_key(text.trim()).unwrap()
    }

    /// A connection to `to` as this gateway presents itself to peers, or with `files`.
    fn peer_connection(&self, to: &Node, files: Option<FederationFiles>) -> Peer {
        let files = files.unwrap_or_else(|| FederationFiles {
            cert: self.certs().join("gateway.pem"),
            key: self.certs().join("gateway.key"),
            witness_key: self.certs().join("witness.key"),
        });
        let config = PeerConfig {
            id: to.id.to_string(),
            address: to.address(),
            ca: to.certs().join("ca.pem"),
            checkpoint_key: to.peer["checkpoint_key"].as_str().unwrap().to_string(),
            witness_key: None,
            server_name: None,
            broadcasts: false,
        };
        Peer::new(&config, &files, Duration::from_secs(5)).unwrap()
    }
}

/// A free port below the kernel's ephemeral range (32768 and up), so that no outgoing
/// connection of another test takes it between now and the gateway's start; the peers'
/// configurations name it before the gateway runs.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 500) as u16 * 20;
    loop {
        let port = 20_000 + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs `ipex audit checkpoint --witnessed` at `node`.
fn witnessed(node: &Node) -> Value {
    let out = node.ipex(&["audit", "checkpoint", "--witnessed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `check` every 100 ms for up to 20 s.
fn within(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn size_of(checkpoint: &Value) -> u64 {
    checkpoint["treeSize"].as_str().map_or_else(
        || checkpoint["treeSize"].as_u64().unwrap_or(0),
        |s| s.parse().unwrap(),
    )
}

fn cosignatures(checkpoint: &Value) -> u64 {
    checkpoint["cosignatures"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_cosign_each_other_and_a_quorum_is_checked() {
    let root = tempfile::tempdir().unwrap();
    let (nl, fr, ie) = (
        Node::new(root.path(), "gw-nl"),
        Node::new(root.path(), "gw-fr"),
        Node::new(root.path(), "gw-ie"),
    );
    nl.configure(&[&fr, &ie]);
    fr.configure(&[&nl, &ie]);
    ie.configure(&[&nl, &fr]);
    let _gw_nl = nl.start();
    let _gw_fr = fr.start();
    let mut gw_ie = ie.start();

    let mut customs = connect(&_gw_nl, &nl.dir).await;
    common::submit(&mut customs, seizure("fed-1".into()))
        .await
        .unwrap();
    within("both peers cosign gw-nl's checkpoint", || {
        let cp = witnessed(&nl);
        size_of(&cp) >= 2 && cosignatures(&cp) == 2
    });
    let cp = witnessed(&nl);
    let note = cp["checkpoint"].as_str().unwrap();
    assert!(
        note.contains("\n\u{2014} ipex.local/gw-fr/witness "),
        "{note}"
    );
    assert!(
        note.contains("\n\u{2014} ipex.local/gw-ie/witness "),
        "{note}"
    );

    let (fr_key, ie_key) = (fr.witness_key(), ie.witness_key());
    let state = root.path().join("state.json");
    let verify = |quorum: &str| {
        nl.ipex(&[
            "audit",
            "verify",
            "--state",
            state.to_str().unwrap(),
            "--witness",
            &fr_key,
            "--witness",
            &ie_key,
            "--quorum",
            quorum,
        ])
    };
    let out = verify("2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(
        report["cosignedBy"],
        serde_json::json!(["ipex.local/gw-fr/witness", "ipex.local/gw-ie/witness"])
    );

    // gw-ie goes down: the next checkpoint is cosigned by gw-fr alone.
    gw_ie.sigkill();
    let before = size_of(&witnessed(&nl));
    common::submit(&mut customs, seizure("fed-2".into()))
        .await
        .unwrap();
    within("gw-fr cosigns the new checkpoint alone", || {
        let cp = witnessed(&nl);
        size_of(&cp) > before && cosignatures(&cp) == 1
    });
    let out = verify("2");
    assert!(
        !out.status.success(),
        "a quorum of 2 passed with one witness up"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "1 valid cosignature(s) of the 2 witnesses given, fewer than the quorum of 2"
        ) && stderr.contains("ipex.local/gw-ie/witness"),
        "{stderr}"
    );
    let out = verify("1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Back up, gw-ie picks up where it left off (its state is in its own log).
    let _gw_ie = ie.start();
    within("both peers cosign again", || {
        cosignatures(&witnessed(&nl)) == 2
    });
    let out = verify("2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_refuses_forks_forged_gateways_and_strangers() {
    let root = tempfile::tempdir().unwrap();
    let (nl, fr) = (
        Node::new(root.path(), "gw-nl"),
        Node::new(root.path(), "gw-fr"),
    );
    nl.configure(&[&fr]);
    fr.configure(&[&nl]);
    let gw_nl = nl.start();
    let mut gw_fr = fr.start();
    let mut customs = connect(&gw_nl, &nl.dir).await;
    common::submit(&mut customs, seizure("fork-1".into()))
        .await
        .unwrap();
    within("gw-fr cosigns gw-nl's checkpoint", || {
        let cp = witnessed(&nl);
        size_of(&cp) >= 2 && cosignatures(&cp) == 1
    });

    // gw-nl's own key signs a checkpoint that contradicts what gw-fr cosigned.
    let signer = nl.log_signer();
    let forged = |size: u64, root: [u8; 32]| {
        signer
            .sign_checkpoint(&Checkpoint::new("ipex.local/gw-nl", size, root))
            .unwrap()
    };
    let as_nl = nl.peer_connection(&fr, None);
    let ask = |old: u64, proof: Vec<[u8; 32]>, note: String| {
        let as_nl = as_nl.clone();
        async move {
            as_nl
                .add_checkpoint(
                    AddCheckpoint {
                        old_size: old,
                        proof,
                        checkpoint_note: note,
                    }
                    .to_body(),
                )
                .await
                .unwrap()
        }
    };
    let (status, body) = ask(0, vec![], forged(1, [7; 32])).await;
    assert_eq!(status, 409, "{body}");
    let cosigned: u64 = body.trim().parse().unwrap();
    assert!(cosigned >= 2);

    // Same size, another root: a fork.
    let (status, body) = ask(cosigned, vec![], forged(cosigned, [7; 32])).await;
    assert_eq!((status, body.trim()), (409, cosigned.to_string().as_str()));
    // Larger, with a proof that does not hold.
    let (status, body) = ask(cosigned, vec![[9; 32]], forged(cosigned + 3, [8; 32])).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("consistency proof does not verify"), "{body}");
    // Signed by another key: 403; an unknown log: 404.
    let stranger = NoteSigner::generate("ipex.local/gw-nl").unwrap();
    let note = stranger
        .sign_checkpoint(&Checkpoint::new("ipex.local/gw-nl", cosigned + 1, [1; 32]))
        .unwrap();
    assert_eq!(ask(cosigned, vec![], note).await.0, 403);
    let other = NoteSigner::generate("ipex.local/gw-xx").unwrap();
    let note = other
        .sign_checkpoint(&Checkpoint::new("ipex.local/gw-xx", 1, [1; 32]))
        .unwrap();
    assert_eq!(ask(0, vec![], note).await.0, 404);

    let metrics = gw_fr.metrics_addr();
    let inconsistent = common::metric(
        &metrics,
        r#"ipex_witness_inconsistent_checkpoints_total{origin="ipex.local/gw-nl"}"#,
    )
    .await;
    // Only the fork is evidence: a wrong proof proves nothing against the log.
    assert_eq!(inconsistent, Some(1.0));
    const FORK: &str =
        "witness: a peer's log showed a checkpoint inconsistent with the one cosigned; refused and recorded";
    within("the witness logs the fork", || {
        gw_fr.logged_all(FORK).len() == 1
    });
    let said = gw_fr.logged_all(FORK);
    assert_eq!(said[0]["fields"]["status"], 409);

    // The witness's state survives kill -9: the fork is still refused after a restart.
    gw_fr.sigkill();
    let gw_fr = fr.start();
    let (status, _) = ask(cosigned, vec![], forged(cosigned, [7; 32])).await;
    assert_eq!(status, 409);
    within("the restarted witness logs the refusal", || {
        gw_fr.logged_all(FORK).len() == 1
    });

    // A gateway certificate is no participant's: it calls no participant service.
    let mut as_participant_service =
        ipex::pb::participants_client::ParticipantsClient::new(as_nl.channel());
    let status = as_participant_service
        .who_am_i(ipex::pb::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("gateway certificate"),
        "{}",
        status.message()
    );

    // A participant of gw-fr may not ask its witness.
    let participant = FederationFiles {
        cert: fr.certs().join("customs-nl.pem"),
        key: fr.certs().join("customs-nl.key"),
        witness_key: fr.certs().join("witness.key"),
    };
    let as_participant = nl.peer_connection(&fr, Some(participant));
    let (status, body) = as_participant
        .add_checkpoint(
            AddCheckpoint {
                old_size: 0,
                proof: vec![],
                checkpoint_note: forged(1, [7; 32]),
            }
            .to_body(),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");

    // A certificate naming gw-nl from another CA than gw-nl's, and one naming a gateway that
    // is not a peer: both refused in the handshake, each with its reason.
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let fr_ca = Ca::load(
        &read(fr.certs().join("ca.pem")),
        &read(fr.certs().join("ca.key")),
    )
    .unwrap();
    let nl_ca = Ca::load(
        &read(nl.certs().join("ca.pem")),
        &read(nl.certs().join("ca.key")),
    )
    .unwrap();
    for (issued, reason) in [
        (
            fr_ca.issue_gateway("gw-nl").unwrap(),
            ipex::auth::tls::REASON_NOT_PEERS_CA,
        ),
        (
            nl_ca.issue_gateway("gw-xx").unwrap(),
            ipex::auth::tls::REASON_UNKNOWN_PEER,
        ),
    ] {
        let dir = root.path().join(format!("forged-{}", reason.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &issued.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &issued.key_pem).unwrap();
        let files = FederationFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            witness_key: dir.join("none"),
        };
        let forged_peer = nl.peer_connection(&fr, Some(files));
        let answer = forged_peer
            .add_checkpoint(
                AddCheckpoint {
                    old_size: 0,
                    proof: vec![],
                    checkpoint_note: forged(1, [7; 32]),
                }
                .to_body(),
            )
            .await;
        assert!(
            answer.is_err(),
            "a forged gateway certificate was served: {answer:?}"
        );
        within("the refused handshake is logged with its reason", || {
            gw_fr
                .logged_all("TLS handshake refused")
                .iter()
                .any(|e| e["fields"]["reason"] == reason)
        });
    }
    drop(gw_nl);
}

/// A takedown notice from this gateway's customs to platform `platform` of gateway `gateway`.
fn notice_for(id: &str, platform: &str, gateway: &str) -> ipex::pb::Envelope {
    let mut e = common::notice_to(id, platform);
    let address = format!("{platform}@{gateway}");
    e.recipients = vec![address.clone()];
    let Some(ipex::pb::envelope::Payload::TakedownNotice(n)) = &mut e.payload else {
        unreachable!()
    };
    n.platform = address.clone();
    if let Some(seller) = &mut n.seller {
        seller.platform = address;
    }
    e
}

/// `Get` of `seq` at a gateway, as the caller of `clients`.
async fn get(clients: &mut ipex::cli::client::Clients, seq: u64) -> ipex::pb::GetResponse {
    clients
        .exchange
        .get(ipex::pb::GetRequest {
            key: Some(ipex::pb::get_request::Key::Seq(seq)),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The states of a message at the peers, as its sender sees them.
async fn states(clients: &mut ipex::cli::client::Clients, seq: u64) -> Vec<i32> {
    get(clients, seq)
        .await
        .forwarding
        .iter()
        .map(|f| f.state)
        .collect()
}

async fn connect_as(gw: &Ipexd, node: &Node, participant: &str) -> ipex::cli::client::Clients {
    let tls = ipex::cli::client::ClientTls::dev(&node.certs(), participant).unwrap();
    ipex::cli::client::Clients::new(
        ipex::cli::client::connect(&gw.endpoint(), &tls)
            .await
            .unwrap(),
    )
}

/// Polls an async check every 100 ms for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{what}: {:?}", started.elapsed());
}

/// Waits until the sender of `clients` sees message `seq` in `expected` at its peers.
async fn until_states(
    clients: &ipex::cli::client::Clients,
    seq: u64,
    expected: &[i32],
    what: &str,
) {
    eventually(what, || {
        let mut c = clients.clone();
        async move { states(&mut c, seq).await == expected }
    })
    .await;
}

const DELIVERED: i32 = ipex::pb::ForwardingState::Delivered as i32;
const PENDING: i32 = ipex::pb::ForwardingState::Pending as i32;
const REFUSED: i32 = ipex::pb::ForwardingState::Refused as i32;

/// The built-in policy but for customs' data requests, which go to carriers only.
fn policy_without_data_requests_to_platforms() -> String {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/ipexd.example.toml"
    ))
    .unwrap();
    let rules = &example[example.find("\n[[policy.rules]]").unwrap()..];
    let changed = rules.replace(
        "kind = \"DATA_REQUEST\"\nto = [\"PLATFORM\", \"CARRIER\"]",
        "kind = \"DATA_REQUEST\"\nto = [\"CARRIER\"]",
    );
    assert_ne!(changed, rules);
    format!("\n{changed}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_gateways_once_in_order_through_crashes_and_refusals() {
    let root = tempfile::tempdir().unwrap();
    let (nl, fr, ie) = (
        Node::new(root.path(), "gw-nl"),
        Node::new(root.path(), "gw-fr"),
        Node::new(root.path(), "gw-ie"),
    );
    nl.configure_with(&[&fr, &ie], true, "");
    // gw-fr takes no broadcasts from its peers.
    fr.configure(&[&nl, &ie]);
    ie.configure_with(
        &[&nl, &fr],
        true,
        &policy_without_data_requests_to_platforms(),
    );
    nl.open_to_peers("customs-nl");
    fr.open_to_peers("customs-fr");
    ie.open_to_peers("market-a");
    let mut gw_nl = nl.start();
    let gw_fr = fr.start();
    let mut gw_ie = ie.start();

    // Each lists the other's published participants.
    within("gw-nl lists market-a@gw-ie", || {
        let out = nl.ipex(&["participants"]);
        String::from_utf8_lossy(&out.stdout).contains("\"market-a@gw-ie\"")
    });
    let listed = String::from_utf8_lossy(&nl.ipex(&["participants"]).stdout).to_string();
    assert!(
        !listed.contains("\"market-b@gw-ie\""),
        "an unpublished participant is listed: {listed}"
    );

    // customs-nl@gw-nl → market-a@gw-ie: stored here, delivered there, reported back.
    let mut customs = connect_as(&gw_nl, &nl, "customs-nl").await;
    let receipt = common::submit(&mut customs, notice_for("fwd-1", "market-a", "gw-ie"))
        .await
        .unwrap();
    assert!(receipt.placements.is_empty(), "{receipt:?}");
    until_states(
        &customs,
        receipt.seq,
        &[DELIVERED],
        "the notice is delivered",
    )
    .await;
    let report = get(&mut customs, receipt.seq).await.forwarding.remove(0);
    assert_eq!(report.gateway, "gw-ie");
    assert_eq!(report.recipients, vec!["market-a@gw-ie".to_string()]);
    assert_eq!(report.peer_placements.len(), 1);
    assert_eq!(report.peer_placements[0].recipient, "market-a@gw-ie");
    assert_eq!(report.peer_placements[0].inbox_no, 1);
    // The report is also a message in the sender's inbox.
    let inbox = common::inbox(&mut customs).await;
    assert!(inbox
        .iter()
        .any(|m| m.envelope.as_ref().unwrap().kind == ipex::pb::Kind::ForwardingReport as i32));

    let mut market = connect_as(&gw_ie, &ie, "market-a").await;
    let inbox = common::inbox(&mut market).await;
    assert_eq!(inbox.len(), 1);
    let notice = inbox[0].envelope.clone().unwrap();
    assert_eq!(notice.sender, "customs-nl@gw-nl");
    assert_eq!(notice.id, "fwd-1");
    assert_eq!(notice.recipients, vec!["market-a".to_string()]);
    assert_eq!(inbox[0].inbox_no, 1);
    assert_eq!(inbox[0].seq, report.peer_seq);

    // market-a answers; the outcome comes back to customs-nl in its inbox.
    let mut outcome = common::example("takedown-outcome.json");
    outcome.id = "fwd-outcome-1".into();
    outcome.recipients = vec!["customs-nl@gw-nl".into()];
    outcome.refs = vec![ipex::pb::MessageRef {
        sender: "customs-nl@gw-nl".into(),
        id: "fwd-1".into(),
    }];
    let answer = common::submit(&mut market, outcome).await.unwrap();
    eventually("the outcome reaches customs-nl", || {
        let mut c = customs.clone();
        async move {
            common::inbox(&mut c).await.iter().any(|m| {
                let e = m.envelope.as_ref().unwrap();
                e.sender == "market-a@gw-ie" && e.id == "fwd-outcome-1"
            })
        }
    })
    .await;
    let back = common::inbox(&mut customs)
        .await
        .into_iter()
        .find(|m| m.envelope.as_ref().unwrap().id == "fwd-outcome-1")
        .unwrap();
    assert_eq!(
        back.envelope.unwrap().refs,
        vec![ipex::pb::MessageRef {
            sender: "customs-nl".into(),
            id: "fwd-1".into()
        }]
    );
    until_states(
        &market,
        answer.seq,
        &[DELIVERED],
        "market-a sees its outcome delivered",
    )
    .await;

    // Refused by gw-ie's policy (no data requests to platforms there): refused, with why.
    let mut request = common::example("data-request.json");
    request.id = "fwd-request-1".into();
    request.recipients = vec!["market-a@gw-ie".into()];
    let asked = common::submit(&mut customs, request).await.unwrap();
    until_states(
        &customs,
        asked.seq,
        &[REFUSED],
        "the data request is refused by gw-ie",
    )
    .await;
    let refusal = get(&mut customs, asked.seq).await.forwarding.remove(0);
    assert_eq!(refusal.code, "PERMISSION_DENIED");
    assert!(
        refusal.reason.contains("DATA_REQUEST"),
        "{}",
        refusal.reason
    );

    // gw-ie killed: the messages wait, pending, and arrive once, in order, when it is back.
    gw_ie.sigkill();
    let mut seqs = Vec::new();
    for n in 2..=6 {
        let r = common::submit(
            &mut customs,
            notice_for(&format!("fwd-{n}"), "market-a", "gw-ie"),
        )
        .await
        .unwrap();
        seqs.push(r.seq);
    }
    assert_eq!(states(&mut customs, seqs[0]).await, vec![PENDING]);
    let gw_ie = ie.start();
    // gw-nl killed while it forwards, and started again.
    tokio::time::sleep(Duration::from_millis(150)).await;
    gw_nl.sigkill();
    let gw_nl = nl.start();
    let mut customs = connect_as(&gw_nl, &nl, "customs-nl").await;
    for seq in &seqs {
        let seq = *seq;
        until_states(
            &customs,
            seq,
            &[DELIVERED],
            "each waiting notice is delivered",
        )
        .await;
    }
    let mut market = connect_as(&gw_ie, &ie, "market-a").await;
    let inbox = common::inbox(&mut market).await;
    let notices: Vec<(u64, String)> = inbox
        .iter()
        .filter(|m| m.envelope.as_ref().unwrap().kind == ipex::pb::Kind::TakedownNotice as i32)
        .map(|m| (m.inbox_no, m.envelope.as_ref().unwrap().id.clone()))
        .collect();
    let ids: Vec<&str> = notices.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["fwd-1", "fwd-2", "fwd-3", "fwd-4", "fwd-5", "fwd-6"],
        "{notices:?}"
    );
    let numbers: Vec<u64> = inbox.iter().map(|m| m.inbox_no).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());

    // A GREEN seizure broadcast reaches the participants of gw-ie its policy lets receive it
    // and that are open to peers; gw-fr, which takes no broadcasts, refuses it.
    let seized = common::submit(
        &mut customs,
        common::process::seizure("fwd-seizure-1".into()),
    )
    .await
    .unwrap();
    until_states(
        &customs,
        seized.seq,
        &[REFUSED, DELIVERED],
        "the broadcast is answered by both peers",
    )
    .await;
    let mut answers = get(&mut customs, seized.seq).await.forwarding;
    let broadcast = answers.remove(1);
    assert_eq!(answers[0].gateway, "gw-fr");
    assert!(
        answers[0].reason.contains("takes no broadcasts from gw-nl"),
        "{:?}",
        answers[0]
    );
    let placed: Vec<&str> = broadcast
        .peer_placements
        .iter()
        .map(|p| p.recipient.as_str())
        .collect();
    assert_eq!(placed, ["market-a@gw-ie"]);
    let inbox = common::inbox(&mut market).await;
    let last = inbox.last().unwrap().envelope.as_ref().unwrap();
    assert_eq!(
        (last.sender.as_str(), last.id.as_str()),
        ("customs-nl@gw-nl", "fwd-seizure-1")
    );
    // The seller's platform is gw-nl's market-a, not gw-ie's own.
    let Some(ipex::pb::envelope::Payload::SeizureNotification(seizure)) = &last.payload else {
        panic!("not a seizure: {last:?}")
    };
    assert_eq!(seizure.seller.as_ref().unwrap().platform, "market-a@gw-nl");

    // A third gateway's customs reaches the same platform.
    let mut customs_fr = connect_as(&gw_fr, &fr, "customs-fr").await;
    let from_fr = common::submit(&mut customs_fr, notice_for("fwd-fr-1", "market-a", "gw-ie"))
        .await
        .unwrap();
    until_states(
        &customs_fr,
        from_fr.seq,
        &[DELIVERED],
        "gw-fr's notice is delivered",
    )
    .await;
    let inbox = common::inbox(&mut market).await;
    let last = inbox.last().unwrap().envelope.as_ref().unwrap();
    assert_eq!(
        (last.sender.as_str(), last.id.as_str()),
        ("customs-fr@gw-fr", "fwd-fr-1")
    );

    // A participant that is not open to peers cannot address them.
    let mut closed = connect_as(&gw_nl, &nl, "customs-fr").await;
    let status = common::submit(&mut closed, notice_for("fwd-closed", "market-a", "gw-ie"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("not open to peers"),
        "{}",
        status.message()
    );

    // An unknown gateway and an unpublished participant are refused at once, naming the field.
    for (to, says) in [
        ("market-a@gw-xx", "not a peer gateway"),
        ("market-b@gw-ie", "not a participant gw-ie publishes"),
    ] {
        let mut e = notice_for("fwd-bad", "market-a", "gw-ie");
        e.recipients = vec![to.into()];
        let status = common::submit(&mut customs, e).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{}", status.message());
        assert!(common::violated_fields(&status).contains(&"envelope.recipients[0]".to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_to_a_peer_that_is_down_is_bounded_and_local_traffic_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let (nl, ie) = (
        Node::new(root.path(), "gw-nl"),
        Node::new(root.path(), "gw-ie"),
    );
    nl.configure(&[&ie]);
    ie.configure(&[&nl]);
    let config = nl.dir.join("ipexd.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "peer_timeout_ms = 2000\n",
            "peer_timeout_ms = 2000\noutbox_max_messages = 2\n",
        ),
    )
    .unwrap();
    nl.open_to_peers("customs-nl");
    ie.open_to_peers("market-a");
    let gw_nl = nl.start();
    let mut gw_ie = ie.start();
    within("gw-nl learns gw-ie's directory", || {
        String::from_utf8_lossy(&nl.ipex(&["participants"]).stdout).contains("\"market-a@gw-ie\"")
    });
    gw_ie.sigkill();

    let mut customs = connect_as(&gw_nl, &nl, "customs-nl").await;
    let mut waiting = Vec::new();
    for n in 1..=2 {
        let r = common::submit(
            &mut customs,
            notice_for(&format!("down-{n}"), "market-a", "gw-ie"),
        )
        .await
        .unwrap();
        waiting.push(r.seq);
    }
    let status = common::submit(&mut customs, notice_for("down-3", "market-a", "gw-ie"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("outbox to peer gateway gw-ie is full")
            && status.message().contains("federation.outbox_max_messages"),
        "{}",
        status.message()
    );
    let refused = get_by_ref(&mut customs, "customs-nl", "down-3").await;
    assert_eq!(
        refused.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound),
        "a refused message was stored"
    );
    // Local traffic is not held up by the peer.
    common::submit(&mut customs, common::notice_to("down-local", "market-a"))
        .await
        .unwrap();

    // Back up: the outbox drains, and there is room again.
    let mut gw_ie = ie.start();
    for seq in waiting {
        until_states(&customs, seq, &[DELIVERED], "a waiting notice is delivered").await;
    }
    common::submit(&mut customs, notice_for("down-3", "market-a", "gw-ie"))
        .await
        .unwrap();

    // A message waiting when its sender is closed to peers (registry reloaded) is answered
    // here: refused, and never sent.
    gw_ie.sigkill();
    let late = common::submit(&mut customs, notice_for("down-4", "market-a", "gw-ie"))
        .await
        .unwrap();
    let registry = nl.certs().join("registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, text.replacen("open_to_peers = true\n", "", 1)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &gw_nl.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until_states(
        &customs,
        late.seq,
        &[REFUSED],
        "the waiting notice is refused here",
    )
    .await;
    let report = get(&mut customs, late.seq).await.forwarding.remove(0);
    assert_eq!(report.code, "FAILED_PRECONDITION");
    assert!(
        report.reason.contains("no longer open to peers"),
        "{}",
        report.reason
    );
}

async fn get_by_ref(
    clients: &mut ipex::cli::client::Clients,
    sender: &str,
    id: &str,
) -> Result<ipex::pb::GetResponse, tonic::Status> {
    clients
        .exchange
        .get(ipex::pb::GetRequest {
            key: Some(ipex::pb::get_request::Key::Ref(ipex::pb::MessageRef {
                sender: sender.into(),
                id: id.into(),
            })),
        })
        .await
        .map(|r| r.into_inner())
}
