//! The real binaries, as a user runs them: `ipexd` started as a separate process in
//! development mode in a fresh directory, driven by the `ipex` command-line client through the
//! README walk-through; `ipexd` refusing a bad configuration; the `deploy/` examples parsing
//! with the gateway's own code, so they cannot rot; and `ipex pseudonym` computing the
//! README's test vectors without a gateway.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const IPEXD: &str = env!("CARGO_BIN_EXE_ipexd");
const IPEX: &str = env!("CARGO_BIN_EXE_ipex");

/// How long a process may take to start, answer or stop before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// The line `ipexd` logs once it accepts connections.
const LISTENING: &str = "ipex gateway listening (mutual TLS)";

const SELLER_FLAG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/seller-flag.json"
);
const TAKEDOWN_NOTICE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/takedown-notice.json"
);
const TAKEDOWN_OUTCOME: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/takedown-outcome.json"
);
const SEIZURE_NOTIFICATION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/seizure-notification.json"
);
const SELLER_FLAG_MARKET_B: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/seller-flag-market-b.json"
);
const LISTING_ALERT_OUTCOME: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/listing-alert-outcome.json"
);
const SHIPMENT_ALERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/messages/shipment-alert.json"
);
const DEPLOY_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/ipexd.example.toml");
const DEPLOY_REGISTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/registry.example.toml");

/// A command for one of our binaries, unaffected by the `IPEX_*` variables and `RUST_LOG` of
/// whoever runs the tests.
fn command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("RUST_LOG", "info");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IPEX_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Waits for `child` until `deadline` has passed; `None` when it is still running.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for a child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a pipe to its end in a thread, so a chatty child never blocks on a full pipe.
fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Runs `cmd` to completion, killing it and failing the test if it takes longer than
/// [`DEADLINE`].
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let Some(status) = wait_until(&mut child, Instant::now() + DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {DEADLINE:?}");
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A running `ipexd` process. Dropping it kills the process, so a failing test leaves none
/// behind; a graceful stop goes through [`Gateway::terminate`].
struct Gateway {
    child: Child,
    /// `host:port` it listens on, from its log.
    addr: String,
    /// Its working directory (development PKI and store live below it).
    dir: std::path::PathBuf,
    /// Every line it wrote, stdout and stderr.
    log: Arc<Mutex<Vec<String>>>,
    /// The threads draining its output; they end when it exits.
    drains: Vec<JoinHandle<()>>,
    /// Set once it has exited.
    exited: bool,
}

/// Copies every line of `pipe` into `log`, and to `tx` while someone listens.
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
}

impl Gateway {
    /// Starts `ipexd` in development mode in `dir` on a free loopback port, and waits for the
    /// line announcing its address.
    fn start_dev(dir: &Path) -> Gateway {
        Gateway::start_dev_with(dir, &[])
    }

    /// Like [`Gateway::start_dev`], with environment variables for `ipexd`.
    fn start_dev_with(dir: &Path, env: &[(&str, &str)]) -> Gateway {
        let mut child = command(IPEXD, dir)
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            // Tests run side by side: none takes the development metrics port.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start ipexd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let drains = vec![
            // The gateway logs on stderr.
            drain(child.stdout.take().unwrap(), log.clone(), None),
            drain(child.stderr.take().unwrap(), log.clone(), Some(tx)),
        ];
        let mut gateway = Gateway {
            child,
            addr: String::new(),
            dir: dir.to_path_buf(),
            log,
            drains,
            exited: false,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("ipexd did not say {LISTENING:?} within {DEADLINE:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("ipexd closed its output before saying {LISTENING:?}")
                }
            };
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                panic!("ipexd --log-format json wrote a line that is not JSON: {line}")
            };
            if entry["fields"]["message"] == LISTENING {
                assert_eq!(entry["level"], "INFO", "{line}");
                assert_eq!(entry["fields"]["dev_mode"], true, "{line}");
                assert_eq!(entry["fields"]["data_dir"], "data", "{line}");
                gateway.addr = entry["fields"]["addr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no fields.addr in {line}"))
                    .to_string();
                // The drain thread keeps reading; with the receiver gone it only keeps the log.
                return gateway;
            }
        }
    }

    /// Runs `ipex --gateway https://<addr> --as <participant> <args>` in the gateway's
    /// directory, where the relative `certs/dev` of development mode resolves.
    fn ipex(&self, participant: &str, args: &[&str]) -> Output {
        let gateway = format!("https://{}", self.addr);
        run(command(IPEX, &self.dir)
            .args(["--gateway", &gateway, "--as", participant])
            .args(args))
    }

    /// Like [`Gateway::ipex`], for a call that must succeed: its stdout as JSON.
    fn ipex_json(&self, participant: &str, args: &[&str]) -> Value {
        let out = self.ipex(participant, args);
        assert!(
            out.status.success(),
            "ipex --as {participant} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ipex --as {participant} {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Like [`Gateway::ipex`], for a call that must be refused: its stderr.
    fn ipex_fails(&self, participant: &str, args: &[&str]) -> String {
        let out = self.ipex(participant, args);
        assert!(
            !out.status.success(),
            "ipex --as {participant} {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            out.stdout.is_empty(),
            "a refused call printed on stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Sends SIGTERM and waits for the process to exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = run(Command::new("kill").args(["-TERM", &pid]));
        assert!(kill.status.success(), "kill -TERM {pid} failed");
        let status = wait_until(&mut self.child, Instant::now() + DEADLINE)
            .unwrap_or_else(|| panic!("ipexd did not exit within {DEADLINE:?} of SIGTERM"));
        self.exited = true;
        for drain in self.drains.drain(..) {
            drain.join().unwrap();
        }
        status
    }

    /// The parsed JSON log lines written so far.
    fn log_entries(&self) -> Vec<Value> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- ipexd output ---");
            for line in self.log.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// The messages of an `ipex inbox` answer.
fn messages(inbox: &Value) -> &Vec<Value> {
    inbox["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {inbox}"))
}

/// The message with envelope id `id` in an `ipex inbox` answer.
fn find<'a>(inbox: &'a Value, id: &str) -> &'a Value {
    messages(inbox)
        .iter()
        .find(|m| m["envelope"]["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {inbox:#}"))
}

/// The inbox number given to `recipient` in a receipt.
fn placement<'a>(receipt: &'a Value, recipient: &str) -> &'a Value {
    receipt["placements"]
        .as_array()
        .unwrap_or_else(|| panic!("no placements in {receipt}"))
        .iter()
        .find(|p| p["recipient"] == recipient)
        .map(|p| &p["inboxNo"])
        .unwrap_or_else(|| panic!("{recipient} not placed by {receipt:#}"))
}

fn is_sha256_hex(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The README walk-through, with the real `ipexd` and `ipex` binaries: development mode
/// creates its PKI and store, messages flow between the roles the policy allows, refusals
/// exit non-zero with the gRPC code and field on stderr, and SIGTERM stops the gateway cleanly.
#[test]
fn readme_walk_through_with_the_real_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut gw = Gateway::start_dev(dir);

    // Development mode made a PKI, a registry and the store, relative to its directory.
    for file in [
        "ca.pem",
        "server.pem",
        "server.key",
        "customs-nl.pem",
        "customs-nl.key",
        "market-a.pem",
        "rilo-we.pem",
        "registry.toml",
    ] {
        assert!(
            dir.join("certs/dev").join(file).is_file(),
            "certs/dev/{file} missing"
        );
    }

    // The gateway knows customs-nl by its certificate.
    let me = gw.ipex_json("customs-nl", &["whoami"]);
    // Checked only now: ipexd logs "listening" before it opens the store.
    assert!(
        dir.join("data").is_dir(),
        "the store directory data/ is missing"
    );
    assert_eq!(me["participant"]["id"], "customs-nl");
    assert_eq!(me["participant"]["role"], "ROLE_CUSTOMS");
    assert_eq!(me["participant"]["country"], "NL");
    let pem = dir.join("certs/dev/customs-nl.pem");
    assert_eq!(
        me["certificateSha256"],
        certificate_sha256(&pem),
        "whoami names another certificate than {}",
        pem.display()
    );

    // A platform flags a seller to customs.
    let flag = gw.ipex_json("market-a", &["submit", SELLER_FLAG]);
    let receipt = &flag["receipt"];
    assert_eq!(receipt["sender"], "market-a");
    assert_eq!(receipt["id"], "flag-2026-0001");
    assert_eq!(
        receipt["seq"], "1",
        "uint64 is a JSON string; the store was empty"
    );
    assert_eq!(placement(receipt, "customs-nl"), "1");
    assert!(is_sha256_hex(&receipt["envelopeSha256"]), "{receipt}");
    assert!(receipt.get("duplicate").is_none(), "{receipt}");

    // Resubmitting the same file answers the original receipt.
    let again = gw.ipex_json("market-a", &["submit", SELLER_FLAG]);
    assert_eq!(again["receipt"]["seq"], "1");
    assert_eq!(
        again["receipt"]["envelopeSha256"],
        receipt["envelopeSha256"]
    );
    assert_eq!(again["receipt"]["duplicate"], true);

    // Customs finds the flag in its inbox, sender set by the gateway.
    let inbox = gw.ipex_json("customs-nl", &["inbox"]);
    assert_eq!(messages(&inbox).len(), 1, "{inbox:#}");
    let got = find(&inbox, "flag-2026-0001");
    assert_eq!(got["envelope"]["sender"], "market-a");
    assert_eq!(got["envelope"]["kind"], "KIND_SELLER_FLAG");
    assert_eq!(
        got["envelope"]["sellerFlag"]["platformSellerId"],
        "S-88412907"
    );
    assert_eq!(got["seq"], "1");
    assert_eq!(got["inboxNo"], "1");
    assert_eq!(inbox["head"], "1");

    // Customs sends a takedown notice; the platform finds it in its inbox.
    let notice = gw.ipex_json("customs-nl", &["submit", TAKEDOWN_NOTICE]);
    assert_eq!(notice["receipt"]["sender"], "customs-nl");
    assert_eq!(placement(&notice["receipt"], "market-a"), "1");
    let inbox = gw.ipex_json("market-a", &["inbox"]);
    let got = find(&inbox, "tdn-2026-0001");
    assert_eq!(got["envelope"]["sender"], "customs-nl");
    assert_eq!(got["envelope"]["kind"], "KIND_TAKEDOWN_NOTICE");
    assert_eq!(got["envelope"]["takedownNotice"]["platform"], "market-a");
    assert_eq!(got["seq"], notice["receipt"]["seq"]);

    // The platform answers with an outcome; customs fetches it by sender and id.
    let outcome = gw.ipex_json("market-a", &["submit", TAKEDOWN_OUTCOME]);
    let outcome_no = placement(&outcome["receipt"], "customs-nl");
    assert_eq!(outcome_no, "2");
    let got = gw.ipex_json(
        "customs-nl",
        &["get", "--sender", "market-a", "--id", "tdo-2026-0001"],
    );
    let message = &got["message"];
    assert_eq!(message["seq"], outcome["receipt"]["seq"]);
    assert_eq!(&message["inboxNo"], outcome_no);
    assert_eq!(message["envelope"]["sender"], "market-a");
    assert_eq!(message["envelope"]["refs"][0]["sender"], "customs-nl");
    assert_eq!(message["envelope"]["refs"][0]["id"], "tdn-2026-0001");
    assert_eq!(
        message["envelope"]["takedownOutcome"]["status"],
        "OUTCOME_STATUS_ACTIONED"
    );

    // A GREEN seizure notification without recipients reaches the partner rilo-we.
    let seizure = gw.ipex_json("customs-nl", &["submit", SEIZURE_NOTIFICATION]);
    assert_eq!(placement(&seizure["receipt"], "rilo-we"), "1");
    let inbox = gw.ipex_json("rilo-we", &["inbox"]);
    let got = find(&inbox, "seiz-2026-0001");
    assert_eq!(got["envelope"]["sender"], "customs-nl");
    assert_eq!(got["envelope"]["tlp"], "TLP_GREEN");
    assert_eq!(
        got["envelope"]["seizureNotification"]["caseReference"],
        "NL-SPL-2026-004512"
    );

    // The seizure names market-a's listing: market-a has a listing alert, stored right after
    // it, and answers it with an outcome.
    let alerts = gw.ipex_json("market-a", &["inbox", "--kind", "listing-alert"]);
    let alert = find(&alerts, "ipex:alert:market-a:seiz-2026-0001");
    assert_eq!(alert["seq"], "5");
    assert_eq!(alert["envelope"]["sender"], "customs-nl");
    assert_eq!(alert["envelope"]["tlp"], "TLP_AMBER");
    assert_eq!(
        alert["envelope"]["listingAlert"]["listingUrls"][0],
        "https://market-a.example/listing/7731904412"
    );
    assert_eq!(alert["envelope"]["listingAlert"]["sellerId"], "S-88412907");
    let answered = gw.ipex_json("market-a", &["submit", LISTING_ALERT_OUTCOME]);
    assert_eq!(answered["receipt"]["seq"], "7");
    assert_eq!(placement(&answered["receipt"], "customs-nl"), "4");

    // The seizure's seller is the one market-a flagged (seq 6, a match for customs-nl); then
    // market-b flags a seller with market-a's e-mail pseudonym: another match for customs-nl.
    let flagged = gw.ipex_json("market-b", &["submit", SELLER_FLAG_MARKET_B]);
    assert_eq!(flagged["receipt"]["seq"], "8");
    let matches = gw.ipex_json("customs-nl", &["inbox", "--kind", "seller-match"]);
    let found = messages(&matches);
    assert_eq!(found.len(), 2, "{matches:#}");
    assert_eq!(found[0]["seq"], "6");
    let second = &found[1]["envelope"]["sellerMatch"];
    assert_eq!(second["message"]["id"], "flag-b-2026-0007");
    assert_eq!(second["matches"][0]["ref"]["id"], "flag-2026-0001");
    assert_eq!(second["matches"][0]["basis"], "MATCH_BASIS_PSEUDONYM");
    let market_b = gw.ipex_json("market-b", &["inbox", "--kind", "seller-match"]);
    assert!(market_b.get("messages").is_none(), "{market_b:#}");

    // One seizure, the whole case: nine messages in time order.
    let case = gw.ipex_json(
        "customs-nl",
        &["case", "--sender", "customs-nl", "--id", "seiz-2026-0001"],
    );
    let seqs: Vec<&str> = case["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["seq"].as_str().unwrap())
        .collect();
    assert_eq!(
        seqs,
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "{case:#}"
    );
    assert_eq!(
        case["entries"][3]["links"][0]["reason"],
        "LINK_REASON_START"
    );
    let case = gw.ipex_json(
        "market-b",
        &["case", "--sender", "customs-nl", "--id", "seiz-2026-0001"],
    );
    assert_eq!(case["entries"].as_array().unwrap().len(), 1, "{case:#}");

    // A partner may send nothing: refused with the gRPC code and the rule on stderr.
    let stderr = gw.ipex_fails("rilo-we", &["submit", SHIPMENT_ALERT]);
    assert!(
        stderr.contains("PermissionDenied") && stderr.contains("SHIPMENT_ALERT"),
        "{stderr}"
    );

    // An invalid file is refused, naming the field path; nothing is stored.
    let mut bad: Value =
        serde_json::from_str(&std::fs::read_to_string(SEIZURE_NOTIFICATION).unwrap()).unwrap();
    bad["id"] = "seiz-2026-0002".into();
    bad["seizureNotification"]["items"][0]["hsCode"] = "64A3".into();
    let bad_file = dir.join("bad-hs-code.json");
    std::fs::write(&bad_file, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
    let stderr = gw.ipex_fails("customs-nl", &["submit", bad_file.to_str().unwrap()]);
    assert!(
        stderr.contains("InvalidArgument")
            && stderr.contains("envelope.seizure_notification.items[0].hs_code"),
        "{stderr}"
    );
    let stderr = gw.ipex_fails(
        "customs-nl",
        &["get", "--sender", "customs-nl", "--id", "seiz-2026-0002"],
    );
    assert!(stderr.contains("NotFound"), "{stderr}");

    // Health answers with exit status 0 while the gateway serves; an unknown service is an
    // error (NotFound, exit status 1).
    let health = gw.ipex_json("rilo-we", &["health"]);
    assert_eq!(health["status"], "SERVING", "{health}");
    let health = gw.ipex_json("rilo-we", &["health", "--service", "ipex.v1.Exchange"]);
    assert_eq!(health["status"], "SERVING", "{health}");
    let stderr = gw.ipex_fails("rilo-we", &["health", "--service", "ipex.v1.Nothing"]);
    assert!(stderr.contains("NotFound"), "{stderr}");

    // SIGTERM: the gateway flushes its store and exits with success.
    let status = gw.terminate();
    assert!(status.success(), "ipexd exited with {status} after SIGTERM");
    let stopped = gw
        .log_entries()
        .into_iter()
        .find(|e| e["fields"]["message"] == "store flushed; gateway stopped")
        .expect("ipexd did not log that it flushed its store");
    assert_eq!(stopped["fields"]["last_seq"], 9, "{stopped}");
}

/// SHA-256 of the DER certificate in a PEM file, hex, as `whoami` reports it.
fn certificate_sha256(pem: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};
    let der = rustls::pki_types::CertificateDer::from_pem_file(pem)
        .unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
    hex::encode(Sha256::digest(der.as_ref()))
}

/// A configuration error stops `ipexd` before it listens, with exit code 64 (EX_USAGE) and a
/// message naming the key at fault.
#[test]
fn invalid_config_exits_64_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    // (top-level keys, tables, what the message must name)
    let cases = [
        ("listen_addr = \"127.0.0.1:50051\"\n", "", "listen_addr"),
        ("max_message_bytes = 10\n", "", "max_message_bytes"),
        ("", "[commit]\nmax_batch = 0\n", "commit.max_batch"),
        ("shutdown_grace_ms = 0\n", "", "shutdown_grace_ms"),
    ];
    for (i, (top, tables, key)) in cases.into_iter().enumerate() {
        let config = tmp.path().join(format!("ipexd-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "{top}registry = \"registry.toml\"\n\n[tls]\ncert = \"server.pem\"\n\
                 key = \"server.key\"\nclient_ca = \"ca.pem\"\n\n{tables}"
            ),
        )
        .unwrap();
        let out = run(command(IPEXD, tmp.path()).args([
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]));
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(64), "{key}: {output}");
        assert!(output.contains(key), "{key} not named in: {output}");
        assert!(!output.contains(LISTENING), "{key}: {output}");
    }

    // A bad value from the environment too, naming the variable and the key; with or without
    // a file.
    let config = tmp.path().join("ipexd.toml");
    std::fs::write(
        &config,
        "registry = \"registry.toml\"\n\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n\
         client_ca = \"ca.pem\"\n\n[audit]\nsigning_key = \"audit.key\"\n",
    )
    .unwrap();
    for (name, value, key) in [
        ("IPEX_COMMIT__MAX_BATCH", "many", "commit.max_batch"),
        ("IPEX_TLS__CRLS", "[1]", "tls.crls"),
    ] {
        let mut with_file = command(IPEXD, tmp.path());
        with_file.args(["--config", config.to_str().unwrap()]);
        for mut cmd in [with_file, command(IPEXD, tmp.path())] {
            let out = run(cmd.args(["--listen", "127.0.0.1:0"]).env(name, value));
            let output = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(64), "{name}: {output}");
            assert!(output.contains(name), "{name} not named in: {output}");
            assert!(output.contains(key), "{key} not named in: {output}");
            assert!(!output.contains(LISTENING), "{name}: {output}");
        }
    }
}

/// The production examples in `deploy/` are accepted by the gateway's own parsers, and the
/// example policy is exactly the built-in one.
#[test]
fn deploy_examples_parse() {
    let text = std::fs::read_to_string(DEPLOY_CONFIG).unwrap();
    let config = ipex::ops::config::Config::from_toml(&text, DEPLOY_CONFIG)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.dev_mode, "the production example runs in dev mode");
    assert_eq!(
        config.policy().unwrap(),
        ipex::domain::policy::Policy::default(),
        "the example policy differs from the built-in table"
    );

    let text = std::fs::read_to_string(DEPLOY_REGISTRY).unwrap();
    let registry = ipex::auth::registry::Registry::from_toml(&text, DEPLOY_REGISTRY)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        registry.iter().any(|p| !p.pinned_sha256.is_empty()),
        "the example registry shows no pinned_sha256"
    );
}

/// Reads a file under `deploy/`.
fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The number of seconds after `key` on the first line of `text` that starts with it
/// (`TimeoutStopSec=30s`, `terminationGracePeriodSeconds: 30`, `stop_grace_period: 30s`).
/// There is no YAML parser in the tree, so the deployment files are read line by line.
fn seconds_after(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    let digits: String = line[key.len()..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    let value: u64 = digits.parse().unwrap_or_else(|_| panic!("{line}"));
    assert!(
        line.ends_with(&digits) || line.ends_with(&format!("{digits}s")),
        "{line}: give seconds"
    );
    value
}

/// The deployment files agree with the gateway: the Kubernetes configuration and registry
/// pass the gateway's own parsers and name only files the Secret and ConfigMap provide, and
/// systemd, compose and Kubernetes all wait for a stopping gateway longer than its drain may
/// take, so it is never killed mid-drain.
#[test]
fn deploy_targets_agree_with_the_gateway() {
    let k8s =
        ipex::ops::config::Config::from_toml(&deploy_file("k8s/ipexd.toml"), "k8s/ipexd.toml")
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(!k8s.dev_mode);
    ipex::auth::registry::Registry::from_toml(
        &deploy_file("k8s/registry.toml"),
        "k8s/registry.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Files: the ConfigMap at /etc/ipex, the Secret at /var/run/secrets/ipex, the store on
    // the volume at /var/lib/ipex; the image reads /etc/ipex/ipexd.toml.
    let statefulset = deploy_file("k8s/statefulset.yaml");
    let secret = deploy_file("k8s/secret.yaml");
    for mount in [
        "mountPath: /etc/ipex\n",
        "mountPath: /var/run/secrets/ipex\n",
        "mountPath: /var/lib/ipex\n",
    ] {
        assert!(
            statefulset.contains(mount),
            "statefulset.yaml lacks {mount}"
        );
    }
    assert!(deploy_file("Containerfile")
        .contains(r#"ENTRYPOINT ["ipexd", "--config", "/etc/ipex/ipexd.toml"]"#));
    assert!(deploy_file("k8s/kustomization.yaml").contains("- registry.toml"));
    assert_eq!(k8s.registry, Path::new("/etc/ipex/registry.toml"));
    assert!(k8s.data_dir.starts_with("/var/lib/ipex"));
    let probe_files = ["probe.pem", "probe.key", "gateway-ca.pem"]
        .map(|f| Path::new("/var/run/secrets/ipex").join(f));
    let secret_files = [
        &k8s.tls.cert,
        &k8s.tls.key,
        &k8s.tls.client_ca,
        k8s.audit.signing_key.as_ref().unwrap(),
    ]
    .into_iter()
    .chain(probe_files.iter());
    for file in secret_files {
        let name = file
            .strip_prefix("/var/run/secrets/ipex")
            .unwrap_or_else(|_| panic!("{} is not in the Secret's mount", file.display()));
        assert!(
            secret.contains(&format!("\n  {}: |", name.display())),
            "secret.yaml has no {}",
            name.display()
        );
        assert!(
            name == Path::new("gateway.pem")
                || name == Path::new("gateway.key")
                || name == Path::new("participants-ca.pem")
                || name == Path::new("audit.key")
                || statefulset.contains(&file.display().to_string()),
            "the probe's {} is not named in statefulset.yaml",
            name.display()
        );
    }

    // Stop timeouts above the drain, with room for the final flush.
    let example =
        ipex::ops::config::Config::from_toml(&deploy_file("ipexd.example.toml"), "example")
            .unwrap_or_else(|e| panic!("{e}"));
    let dev = ipex::dev::config(Path::new("certs/dev"));
    for (file, key, grace_ms) in [
        (
            "systemd/ipexd.service",
            "TimeoutStopSec=",
            example.shutdown_grace_ms,
        ),
        (
            "k8s/statefulset.yaml",
            "terminationGracePeriodSeconds:",
            k8s.shutdown_grace_ms,
        ),
        ("compose.yaml", "stop_grace_period:", dev.shutdown_grace_ms),
    ] {
        let stop_ms = seconds_after(&deploy_file(file), key) * 1000;
        assert!(
            stop_ms >= grace_ms + 5000,
            "{file}: {key} {stop_ms} ms leaves too little over shutdown_grace_ms {grace_ms}"
        );
    }
}

/// `ipex bench` with no gateway starts its own and, with --json, prints for each call (health,
/// plain and linked Submit) at each concurrency the figures the README's Performance section quotes, and the verdict on
/// the target.
#[test]
fn bench_runs_on_its_own_gateway_and_prints_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(command(IPEX, tmp.path()).args([
        "bench",
        "--json",
        "--requests",
        "64",
        "--concurrency",
        "1,64",
        "--connections",
        "2",
        "--warmup",
        "0s",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ipex bench failed: {stderr}");
    assert!(
        stderr.contains("submit") && stderr.contains("in flight"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ipex bench --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(report["gateway"], "local");
    assert_eq!(report["connections"], 2);
    assert_eq!(report["requests"], 64);
    let steps = report["steps"].as_array().unwrap();
    let measured: Vec<(&str, u64)> = steps
        .iter()
        .map(|s| {
            (
                s["call"].as_str().unwrap(),
                s["concurrency"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        measured,
        [
            ("health", 1),
            ("submit", 1),
            ("linked", 1),
            ("unlinked", 1),
            ("signed", 1),
            ("peer-down", 1),
            ("health", 64),
            ("submit", 64),
            ("linked", 64),
            ("unlinked", 64),
            ("signed", 64),
            ("peer-down", 64)
        ]
    );
    for step in steps {
        assert_eq!(step["calls"], 64, "{step}");
        assert_eq!(step["errors"], 0, "{step}");
        assert!(step["calls_per_sec"].as_f64().unwrap() > 0.0, "{step}");
        let p50 = step["p50_ms"].as_f64().unwrap();
        let p99 = step["p99_ms"].as_f64().unwrap();
        let p999 = step["p999_ms"].as_f64().unwrap();
        assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{step}");
    }
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 2);
    for ratio in ratios {
        assert!(
            ratio["calls_per_sec_ratio"].as_f64().unwrap() > 0.0,
            "{ratio}"
        );
        assert!(ratio["p99_ratio"].as_f64().unwrap() > 0.0, "{ratio}");
        assert!(
            ratio["linked_calls_per_sec_ratio"].as_f64().unwrap() > 0.0,
            "{ratio}"
        );
        assert!(
            ratio["signed_calls_per_sec_ratio"].as_f64().unwrap() > 0.0,
            "{ratio}"
        );
        assert!(
            ratio["linked_unlinked_calls_per_sec_ratio"]
                .as_f64()
                .unwrap()
                > 0.0,
            "{ratio}"
        );
        assert!(
            ratio["peer_down_calls_per_sec_ratio"].as_f64().unwrap() > 0.0,
            "{ratio}"
        );
    }
    let target = &report["target"];
    assert_eq!(target["concurrency"], 64);
    assert_eq!(target["min_calls_per_sec_ratio"], 0.6);
    assert_eq!(target["max_p99_ratio"], 2.0);
    assert!(target["met"].is_boolean(), "{target}");
}

/// The feeds, tokens and audit commands of the README, with the real binaries: a durable
/// subscription that resumes after its acknowledged message, a search by seller, an officer
/// token limited to reading, and an online and offline audit verification.
#[test]
fn subscribe_search_token_and_audit_with_the_real_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_dev(dir.path());
    gw.ipex_json("customs-nl", &["submit", SEIZURE_NOTIFICATION]);
    gw.ipex_json("market-a", &["submit", SELLER_FLAG]);

    // A durable feed from the start: the seizure, then stop (acknowledged on the way out).
    let feed = [
        "subscribe",
        "--kind",
        "seizure",
        "--hs",
        "6403",
        "--durable",
        "my-feed",
        "--from-seq",
        "1",
        "--max",
        "1",
    ];
    let first = gw.ipex_json("rilo-we", &feed);
    assert_eq!(
        first["message"]["envelope"]["id"], "seiz-2026-0001",
        "{first}"
    );
    assert_eq!(first["seq"], "1");
    // A second seizure; the feed resumes after the acknowledged one.
    let second = dir.path().join("seizure-2.json");
    let text = std::fs::read_to_string(SEIZURE_NOTIFICATION)
        .unwrap()
        .replace("seiz-2026-0001", "seiz-2026-0002");
    std::fs::write(&second, text).unwrap();
    gw.ipex_json("customs-nl", &["submit", second.to_str().unwrap()]);
    let resumed = gw.ipex_json(
        "rilo-we",
        &["subscribe", "--durable", "my-feed", "--max", "1"],
    );
    assert_eq!(
        resumed["message"]["envelope"]["id"], "seiz-2026-0002",
        "{resumed}"
    );

    // Customs pulls the platform's flags on a seller.
    let found = gw.ipex_json(
        "customs-nl",
        &["search", "--kind", "flag", "--seller", "S-88412907"],
    );
    assert_eq!(found["envelope"]["id"], "flag-2026-0001", "{found}");

    // An officer token that may read but not submit.
    let out = gw.ipex(
        "customs-nl",
        &[
            "token",
            "issue",
            "--sub",
            "officer-17",
            "--scope",
            "exchange:read",
            "--ttl",
            "15m",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let me = gw.ipex_json("customs-nl", &["--token", &token, "whoami"]);
    assert_eq!(me["officer"], "officer-17");
    let refused = gw.ipex_fails(
        "customs-nl",
        &["--token", &token, "submit", TAKEDOWN_NOTICE],
    );
    assert!(
        refused.contains("PermissionDenied") && refused.contains("exchange:submit"),
        "{refused}"
    );
    // The token is bound to customs-nl's certificate: useless to another participant.
    let stolen = gw.ipex_fails("market-a", &["--token", &token, "whoami"]);
    assert!(stolen.contains("Unauthenticated"), "{stolen}");

    // Audit: online, then an export verified offline against the same state.
    let verified = gw.ipex_json("market-a", &["audit", "verify", "--state", "state.json"]);
    assert_eq!(verified["verified"], true, "{verified}");
    gw.ipex_json("market-a", &["audit", "export", "--out", "log.jsonl"]);
    let offline = gw.ipex_json(
        "market-a",
        &[
            "audit",
            "verify",
            "--file",
            "log.jsonl",
            "--state",
            "state.json",
        ],
    );
    assert_eq!(offline["verified"], true, "{offline}");
}

/// SIGHUP reloads the registry of a running gateway: a certificate put on the deny list is
/// refused on its next call; before the signal (file checks off) nothing changed.
#[test]
fn sighup_reloads_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    // File checks off: only the signal may reload.
    let mut gw = Gateway::start_dev_with(dir.path(), &[("IPEX_RELOAD_CHECK_MS", "0")]);
    gw.ipex_json("market-a", &["whoami"]);
    let registry = dir.path().join("certs/dev/registry.toml");
    let denied = certificate_sha256(&dir.path().join("certs/dev/market-a.pem"));
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, format!("denied_sha256 = [\"{denied}\"]\n{text}")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    gw.ipex_json("market-a", &["whoami"]);

    let pid = gw.child.id().to_string();
    assert!(run(Command::new("kill").args(["-HUP", &pid]))
        .status
        .success());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = gw.ipex("market-a", &["whoami"]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("Unauthenticated") && stderr.contains("revoked"),
                "{stderr}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP never reloaded the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.ipex_json("customs-nl", &["whoami"]);
    assert!(gw.terminate().success());
}

/// `ipex pseudonym` with the real binary: the README's test vectors, from normal forms and
/// from values written otherwise, in a directory without any certificate and with a gateway
/// address it never dials; and its refusals, each naming the problem on stderr with exit
/// status 1 and nothing on stdout.
#[test]
fn pseudonym_vectors_and_refusals_with_the_real_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("test.key");
    std::fs::write(&key, format!("{}\n", "42".repeat(32))).unwrap();
    // Stands in for a gateway: the community key must not reach it, so nothing may connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let gateway = format!("https://{}", listener.local_addr().unwrap());
    let pseudonym = |kind: &str, key_file: &Path, value: &str| {
        run(command(IPEX, tmp.path()).args([
            "--gateway",
            &gateway,
            "pseudonym",
            "--type",
            kind,
            "--key-file",
            key_file.to_str().unwrap(),
            value,
        ]))
    };

    let readme = include_str!("../README.md");
    let vectors = [
        (
            "email",
            ["seller.one@example.com", "  Seller.One@Example.COM "],
            "454a0f07d461f29b7825b1802ae97a333a681043b5383221d543f752f687c77f",
        ),
        (
            "phone",
            ["+31205550101", "0031 (0)20-555 0101"],
            "f8d584c3dcb0cc52138dd1b6bb0e6e866698f02bf7ee9b3b91c1267944f271d6",
        ),
        (
            "payment",
            ["NL91ABNA0417164300", "nl91 abna 0417 1643 00"],
            "2268f7fd95a12e150079c20e9d15f532d9d955654dcfdd45922ef622b961b158",
        ),
    ];
    for (kind, values, expected) in vectors {
        assert!(
            readme.contains(expected),
            "the README does not list {expected}"
        );
        for value in values {
            let out = pseudonym(kind, &key, value);
            assert!(
                out.status.success(),
                "--type {kind} {value:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("{expected}\n"),
                "--type {kind} {value:?}"
            );
        }
    }

    // A refusal: exit status 1, nothing on stdout, one error line on stderr.
    let refused = |kind: &str, key_file: &Path, value: &str| {
        let out = pseudonym(kind, key_file, value);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "--type {kind} {value:?}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "--type {kind} {value:?} printed a pseudonym"
        );
        assert!(stderr.starts_with("error: "), "{stderr}");
        stderr
    };
    let short = tmp.path().join("short.key");
    std::fs::write(&short, "42\n").unwrap();
    let stderr = refused("email", &short, "seller.one@example.com");
    assert_eq!(
        stderr,
        format!(
            "error: {}: the key file must hold the community key as 64 hex digits on one line; \
             it holds 2 hex digits\n",
            short.display()
        )
    );
    let not_hex = tmp.path().join("not-hex.key");
    std::fs::write(&not_hex, format!("{}zz\n", "42".repeat(31))).unwrap();
    let stderr = refused("email", &not_hex, "seller.one@example.com");
    assert!(
        stderr.contains("character 63 of the line is not a hex digit"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("4242"),
        "the key file's text is echoed: {stderr}"
    );
    let missing = tmp.path().join("missing.key");
    let stderr = refused("email", &missing, "seller.one@example.com");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot read the key file {}: ",
            missing.display()
        )),
        "{stderr}"
    );
    for (kind, value, problem) in [
        (
            "email",
            "seller.one.example.com",
            "\"seller.one.example.com\" is not an e-mail address",
        ),
        (
            "email",
            "seller one@example.com",
            "\"seller one@example.com\" is not an e-mail address",
        ),
        (
            "phone",
            "020 555 0101",
            "\"020 555 0101\" has no country code: write it as +<country><number>",
        ),
        (
            "phone",
            "+31 20 555",
            "\"+31 20 555\" is not an E.164 number (+ and 8 to 15 digits, the first not 0)",
        ),
        (
            "payment",
            "NL92 ABNA 0417 1643 00",
            "\"NL92 ABNA 0417 1643 00\" fails the IBAN check digits (ISO 13616, mod 97)",
        ),
        (
            "payment",
            "ABNA0417164300",
            "\"ABNA0417164300\" is not an IBAN",
        ),
    ] {
        let stderr = refused(kind, &key, value);
        assert!(
            stderr.starts_with(&format!("error: {problem}")),
            "--type {kind} {value:?}: {stderr}"
        );
    }

    // Wrong usage: exit status 2, with the types it takes.
    let out = pseudonym("fax", &key, "+31205550101");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: email, phone, payment]"),
        "{stderr}"
    );

    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "ipex pseudonym connected to the gateway address"
    );
}

#[test]
fn signed_messages_and_takedown_reports_with_the_real_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gw = Gateway::start_dev(dir);
    // Development mode made a signing key pair per participant and registered the public half.
    for file in [
        "customs-nl.sign.key",
        "customs-nl.sign.pub",
        "market-a.sign.pub",
    ] {
        assert!(dir.join("certs/dev").join(file).is_file(), "{file} missing");
    }
    let registry = std::fs::read_to_string(dir.join("certs/dev/registry.toml")).unwrap();
    assert!(registry.contains("signing_keys = [\"customs-nl.sign.pub\"]"));

    let receipt = gw.ipex_json(
        "customs-nl",
        &[
            "submit",
            "--sign",
            "certs/dev/customs-nl.sign.key",
            TAKEDOWN_NOTICE,
        ],
    );
    assert_eq!(receipt["receipt"]["seq"], "1", "{receipt}");
    // The recipient prints the message and checks it offline with the sender's public key.
    let out = gw.ipex(
        "market-a",
        &["get", "--sender", "customs-nl", "--id", "tdn-2026-0001"],
    );
    assert!(out.status.success());
    let printed = dir.join("notice.json");
    std::fs::write(&printed, &out.stdout).unwrap();
    let verified = run(command(IPEX, dir).args([
        "message",
        "verify",
        printed.to_str().unwrap(),
        "--key",
        "certs/dev/customs-nl.sign.pub",
    ]));
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["signature"], "valid", "{report}");
    assert_eq!(report["alg"], "EdDSA", "{report}");

    // Another participant's key does not verify it: exit status 1, the reason on stderr.
    let wrong = run(command(IPEX, dir).args([
        "message",
        "verify",
        printed.to_str().unwrap(),
        "--key",
        "certs/dev/market-a.sign.pub",
    ]));
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("verification failed"), "{stderr}");

    // Signing with another organisation's key is refused by the gateway, naming the field.
    let mut notice: Value =
        serde_json::from_str(&std::fs::read_to_string(TAKEDOWN_NOTICE).unwrap()).unwrap();
    notice["id"] = "tdn-2026-0002".into();
    let file = dir.join("notice-2.json");
    std::fs::write(&file, notice.to_string()).unwrap();
    let stderr = gw.ipex_fails(
        "customs-nl",
        &[
            "submit",
            "--sign",
            "certs/dev/market-a.sign.key",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("envelope.signature"),
        "{stderr}"
    );

    // The platform answers; the administration's takedown-times report verifies offline with
    // the verifier key alone, and an altered copy does not.
    gw.ipex_json("market-a", &["submit", TAKEDOWN_OUTCOME]);
    let summary = gw.ipex_json(
        "customs-nl",
        &[
            "report",
            "takedown-times",
            "--platform",
            "market-a",
            "--from",
            "2026-01-01",
            "--out",
            "report.json",
            "--svg",
            "report.svg",
        ],
    );
    assert_eq!(summary["entries"], 1, "{summary}");
    assert_eq!(summary["summaries"][0]["platform"], "market-a", "{summary}");
    assert_eq!(summary["summaries"][0]["answered"], "1", "{summary}");
    assert!(std::fs::read_to_string(dir.join("report.svg"))
        .unwrap()
        .starts_with("<svg"));
    let checkpoint = gw.ipex_json("customs-nl", &["audit", "checkpoint"]);
    let key = checkpoint["verifierKey"].as_str().unwrap().to_string();
    let verified =
        run(command(IPEX, dir).args(["audit", "verify-report", "report.json", "--key", &key]));
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["report"], "valid", "{report}");
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let altered = text.replacen("\"delaySeconds\": ", "\"delaySeconds\": 1", 1);
    assert_ne!(altered, text);
    std::fs::write(dir.join("altered.json"), altered).unwrap();
    let refused =
        run(command(IPEX, dir).args(["audit", "verify-report", "altered.json", "--key", &key]));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("entries[0] (customs-nl/tdn-2026-0001): delay_seconds"),
        "{stderr}"
    );
}
