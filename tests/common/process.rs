//! A real `ipexd` process for tests: development mode in a temporary directory, listening on
//! 127.0.0.1:0, its JSON log collected; killed if a test fails before it stops.
#![allow(dead_code)]

use ipex::cli::client::{ClientTls, Clients};
use ipex::pb;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const IPEXD: &str = env!("CARGO_BIN_EXE_ipexd");

/// How long a process may take to start or stop before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running `ipexd` in development mode; killed if the test fails before it stops.
pub struct Ipexd {
    child: Child,
    addr: String,
    /// Every JSON log line so far.
    log: Arc<Mutex<Vec<Value>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Ipexd {
    /// Starts `ipexd` in development mode in `dir` on a free port and waits until it listens.
    pub fn start(dir: &Path) -> Ipexd {
        Ipexd::start_with(dir, &["--metrics-listen", "127.0.0.1:0"])
    }

    /// Starts `ipexd` in `dir` on a free port with `args` added (`--config …`, or no metrics
    /// flag to keep the development default) and waits until it listens.
    pub fn start_with(dir: &Path, args: &[&str]) -> Ipexd {
        Ipexd::start_at(dir, "127.0.0.1:0", args)
    }

    /// Starts `ipexd` in `dir` listening on `listen` with `args` added, and waits until it
    /// listens.
    pub fn start_at(dir: &Path, listen: &str, args: &[&str]) -> Ipexd {
        let mut cmd = Command::new(IPEXD);
        cmd.current_dir(dir)
            .env("RUST_LOG", "info")
            .args(["--listen", listen, "--log-format", "json"])
            .args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IPEX_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start ipexd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Value>();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let entry: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone()));
                lines.lock().unwrap().push(entry.clone());
                let _ = tx.send(entry);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let entry = rx.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "ipexd did not say it listens: {e}; it said: {:?}",
                    log.lock().unwrap()
                )
            });
            if entry["fields"]["message"] == "ipex gateway listening (mutual TLS)" {
                break entry["fields"]["addr"].as_str().unwrap().to_string();
            }
        };
        Ipexd {
            child,
            addr,
            log,
            drain: Some(drain),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("kill -9 failed");
        self.wait();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit after a signal.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(drain) = self.drain.take() {
                    drain.join().unwrap();
                }
                return status;
            }
            assert!(Instant::now() < deadline, "ipexd did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id, to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it serves metrics, as it logged it (just after it said it listens).
    pub fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(entry) = self.logged("metrics listening (plain HTTP, GET /metrics)") {
                return entry["fields"]["addr"].as_str().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "ipexd did not say where it serves metrics"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every log entry so far whose message is `message`.
    pub fn logged_all(&self, message: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["fields"]["message"] == message)
            .cloned()
            .collect()
    }

    /// The first log entry whose message is `message`.
    pub fn logged(&self, message: &str) -> Option<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .cloned()
    }
}

impl Drop for Ipexd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            for entry in self.log.lock().unwrap().iter() {
                eprintln!("{entry}");
            }
        }
    }
}

pub fn seizure(id: String) -> pb::Envelope {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/messages/seizure-notification.json");
    let mut envelope =
        ipex::pb::json::envelope_from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    envelope.id = id;
    envelope
}

pub async fn connect(gw: &Ipexd, dir: &Path) -> Clients {
    let tls = ClientTls::dev(&dir.join("certs/dev"), "customs-nl").unwrap();
    Clients::new(
        ipex::cli::client::connect(&gw.endpoint(), &tls)
            .await
            .unwrap(),
    )
}
