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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        }
        std::fs::write(self.dir.join("ipexd.toml"), toml).unwrap();
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
        };
        Peer::new(&config, &files, Duration::from_secs(5)).unwrap()
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
    assert_eq!(inconsistent, Some(2.0));
    const FORK: &str =
        "witness: a peer's log showed a checkpoint inconsistent with the one cosigned; refused and recorded";
    within("the witness logs both refusals", || {
        gw_fr.logged_all(FORK).len() == 2
    });
    let said = gw_fr.logged_all(FORK);
    assert_eq!(said[0]["fields"]["status"], 409);
    assert_eq!(said[1]["fields"]["status"], 422);

    // The witness's state survives kill -9: the fork is still refused after a restart.
    gw_fr.sigkill();
    let gw_fr = fr.start();
    let (status, _) = ask(cosigned, vec![], forged(cosigned, [7; 32])).await;
    assert_eq!(status, 409);
    within("the restarted witness logs the refusal", || {
        gw_fr.logged_all(FORK).len() == 1
    });

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
