//! What the benchmarks share: reading the environment and /proc, percentiles, and filling a
//! store through its group commit without the network in front of it.
#![allow(dead_code)]

use ipex::pb;
use ipex::storage::{NewMessage, Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub const SEIZURE: &str = include_str!("../../examples/messages/seizure-notification.json");

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`, …); 0 when it cannot be read.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn rss_kib() -> u64 {
    status_kib("self", "VmRSS:")
}

pub fn peak_rss_kib() -> u64 {
    status_kib("self", "VmHWM:")
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The median of three or more figures.
pub fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

/// Bytes of the files under `dir`, recursively.
pub fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => bytes_under(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A temporary directory with a development PKI under `certs/dev` and the development
/// configuration with its store in `data`, as `ipexd` in development mode would use them there.
pub fn dev_setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    ipex::ops::config::Config,
) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs/dev");
    ipex::dev::pki::ensure_dev_pki(&certs).unwrap();
    let mut config = ipex::dev::config(&certs);
    config.data_dir = dir.path().join("data");
    (dir, certs, config)
}

/// What [`fill`] wrote.
pub struct Filled {
    pub seconds: f64,
    /// Protobuf bytes of the envelopes.
    pub envelope_bytes: u64,
    /// Audit leaves in the log, and the bytes of their data.
    pub leaves: u64,
    pub leaf_bytes: u64,
}

/// Writes `total` GREEN seizure notifications of customs-nl for rilo-we into the store of
/// `config` (development PKI under `certs`), 1000 per group commit: 1000 sellers and 50 HS
/// headings, spread evenly.
pub async fn fill(config: &ipex::ops::config::Config, total: u64) -> Filled {
    let key_file = config.audit.signing_key.clone().unwrap();
    ipex::dev::ensure_signing_key(&key_file, &config.origin()).unwrap();
    let signer = ipex::log::note::NoteSigner::from_private_key(
        std::fs::read_to_string(&key_file).unwrap().trim(),
    )
    .unwrap();
    let store = Store::open(
        &config.data_dir,
        StoreOptions {
            verify_on_open: false,
            ..Default::default()
        },
        signer,
        Arc::new(ipex::app::events::Events),
    )
    .unwrap();
    let template = ipex::pb::json::envelope_from_json(SEIZURE).unwrap();
    let started = std::time::Instant::now();
    let mut written = 0u64;
    let mut envelope_bytes = 0u64;
    while written < total {
        let batch: Vec<NewMessage> = (written..(written + 1000).min(total))
            .map(|i| {
                let mut e = template.clone();
                e.id = format!("s-{i}");
                e.sender = "customs-nl".into();
                e.kind = pb::Kind::SeizureNotification as i32;
                if let Some(pb::envelope::Payload::SeizureNotification(s)) = e.payload.as_mut() {
                    s.seller.as_mut().unwrap().seller_id = format!("S-{}", i % 1000);
                    s.items[0].hs_code = format!("{}0399", 10 + i % 50);
                }
                let encoded = prost::Message::encode_to_vec(&e);
                envelope_bytes += encoded.len() as u64;
                NewMessage {
                    sender: "customs-nl".into(),
                    id: e.id.clone(),
                    kind: pb::Kind::SeizureNotification,
                    digest: <sha2::Sha256 as sha2::Digest>::digest(&encoded).into(),
                    encoded,
                    deliver_to: vec!["rilo-we".into()],
                    officer: None,
                    answers: None,
                    index_prefixes: ipex::storage::index_prefixes(
                        &ipex::domain::facets::Facets::of(&e),
                    ),
                    envelope: Arc::new(e),
                    derived_from: None,
                }
            })
            .collect();
        written += batch.len() as u64;
        store.commit(batch).await.unwrap();
        if written % 100_000 == 0 {
            eprintln!("  filled {written}/{total}, RSS {} MiB", rss_kib() / 1024);
        }
    }
    store.settled().await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let leaves = store.tree_size();
    let mut leaf_bytes = 0u64;
    for start in (0..leaves).step_by(10_000) {
        for (_, _, data) in store.leaves(start, (start + 10_000).min(leaves)).unwrap() {
            leaf_bytes += data.len() as u64;
        }
    }
    store.close().unwrap();
    Filled {
        seconds,
        envelope_bytes,
        leaves,
        leaf_bytes,
    }
}
