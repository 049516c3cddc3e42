//! Store benchmark: for 10^4, 10^5 and 10^6 stored GREEN seizure notifications
//! (IPEX_BENCH_STORE_SIZES, comma-separated), the bytes on disk per message against the
//! envelope and leaf bytes it keeps, the time from starting a real `ipexd` on that store to its
//! first answered `Get` over mutual TLS (median of 3 restarts), the gateway's resident
//! memory after start and after 2000 reads, and what seller matching adds to a Submit there:
//! customs-fr's seizures of sellers the store holds a thousand seizures each of (a seller
//! match each) against seizures of sellers it never saw, medians of 21 in a row each.
//!
//! The store is filled through its group commit (1000 messages each), without the network in
//! front of it; `ipex bench` measures Submit over the network.
//!
//! `cargo bench --bench store`.

mod common;
#[path = "../tests/common/process.rs"]
mod process;

use common::{bytes_under, median, status_kib};
use ipex::cli::client::{ClientTls, Clients};
use ipex::pb;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MIB: f64 = 1024.0 * 1024.0;

async fn reader(gw: &process::Ipexd, dir: &std::path::Path) -> Clients {
    let tls = ClientTls::dev(&dir.join("certs/dev"), "rilo-we").unwrap();
    Clients::new(
        ipex::cli::client::connect(&gw.endpoint(), &tls)
            .await
            .unwrap(),
    )
}

/// What the index holds, by key prefix: bytes of keys and values per message, against what
/// sled takes on disk for them.
fn index_contents(dir: &std::path::Path, total: u64) -> String {
    use ipex::storage::{Engine, SledEngine};
    let engine = SledEngine::open(dir, None).unwrap();
    let mut by_prefix: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for entry in engine.range(b"", &[0xff; 8], false) {
        let (key, value) = entry.unwrap();
        let prefix = String::from_utf8_lossy(&key[..key.len().min(2)]).into_owned();
        let slot = by_prefix.entry(prefix).or_default();
        slot.0 += 1;
        slot.1 += (key.len() + value.len()) as u64;
    }
    let logical: u64 = by_prefix.values().map(|(_, bytes)| bytes).sum();
    let parts: Vec<String> = by_prefix
        .iter()
        .map(|(prefix, (keys, bytes))| {
            format!("{prefix} {keys} keys {:.0} B", *bytes as f64 / total as f64)
        })
        .collect();
    format!(
        "index holds {:.0} B/message of keys and values ({}); sled takes {:.0} B/message on disk",
        logical as f64 / total as f64,
        parts.join(", "),
        engine.size_on_disk().unwrap() as f64 / total as f64
    )
}

/// A seizure of customs-fr naming market-a's seller `seller`, as `id`.
fn seizure_of(id: String, seller: &str) -> pb::Envelope {
    let mut e = ipex::pb::json::envelope_from_json(common::SEIZURE).unwrap();
    e.id = id;
    if let Some(pb::envelope::Payload::SeizureNotification(s)) = e.payload.as_mut() {
        s.seller.as_mut().unwrap().seller_id = seller.into();
    }
    e
}

/// Median Submit latency, in ms, of 21 seizures by customs-fr, one after another, each of
/// another seller: `seller(i)`.
async fn submit_latency(client: &mut Clients, label: &str, seller: impl Fn(u64) -> String) -> f64 {
    let mut times = Vec::new();
    for i in 0..21 {
        let envelope = seizure_of(format!("match-{label}-{i}"), &seller(i));
        let started = Instant::now();
        client
            .exchange
            .submit(pb::SubmitRequest {
                envelope: Some(envelope),
            })
            .await
            .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    median(times)
}

/// What matching adds to a Submit on a store of `total` messages.
async fn matching_step(dir: &std::path::Path, total: u64) {
    let mut gw = process::Ipexd::start(dir);
    let tls = ClientTls::dev(&dir.join("certs/dev"), "customs-fr").unwrap();
    let mut client = Clients::new(
        ipex::cli::client::connect(&gw.endpoint(), &tls)
            .await
            .unwrap(),
    );
    submit_latency(&mut client, "warm", |i| format!("S-warm-{i}")).await;
    let unseen = submit_latency(&mut client, "unseen", |i| format!("S-unseen-{i}")).await;
    // The fill gave each of its 1000 sellers one seizure in a thousand, all of customs-nl:
    // each of these raises a seller match for the customs administrations.
    let known = submit_latency(&mut client, "known", |i| format!("S-{}", 7 + i)).await;
    println!(
        "{total:>8} messages: Submit of a seizure whose seller is matched (its newest of ~{} earlier seizures named) {known:.2} ms, of an unseen seller {unseen:.2} ms (medians of 21): matching adds {:.2} ms",
        total / 1000,
        known - unseen
    );
    gw.sigterm();
    assert!(gw.wait().success(), "ipexd did not stop cleanly");
}

async fn size_step(total: u64) {
    let (dir, _, config) = common::dev_setup();
    let filled = common::fill(&config, total).await;
    let log = bytes_under(&config.data_dir.join("log"));
    let all = bytes_under(&config.data_dir);
    let kept = filled.envelope_bytes + filled.leaf_bytes;
    println!(
        "{total:>8} messages: filled in {:.1} s ({:.0}/s); {} leaves; disk {:.1} MiB = {:.0} B/message \
         (log {:.0} B, index {:.0} B); envelope + leaf bytes {:.0} B/message; disk ÷ kept {:.2}",
        filled.seconds,
        total as f64 / filled.seconds,
        filled.leaves,
        all as f64 / MIB,
        all as f64 / total as f64,
        log as f64 / total as f64,
        (all - log) as f64 / total as f64,
        kept as f64 / total as f64,
        all as f64 / kept as f64,
    );

    println!(
        "{total:>8} messages: {}",
        index_contents(&config.data_dir.join("index"), total)
    );

    let mut restarts = Vec::new();
    let mut rss_start = Vec::new();
    let mut rss_read = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut gw = process::Ipexd::start(dir.path());
        let mut client = reader(&gw, dir.path()).await;
        client
            .exchange
            .get(pb::GetRequest {
                key: Some(pb::get_request::Key::Seq(total)),
            })
            .await
            .unwrap();
        restarts.push(started.elapsed().as_secs_f64());
        let pid = gw.pid().to_string();
        rss_start.push(status_kib(&pid, "VmRSS:") as f64 / 1024.0);
        for i in 0..2000u64 {
            client
                .exchange
                .get(pb::GetRequest {
                    key: Some(pb::get_request::Key::Seq(1 + (i * 7919) % total)),
                })
                .await
                .unwrap();
        }
        rss_read.push(status_kib(&pid, "VmRSS:") as f64 / 1024.0);
        gw.sigterm();
        assert!(gw.wait().success(), "ipexd did not stop cleanly");
    }
    println!(
        "{total:>8} messages: restart to first Get {:.3} s (median of 3: {}); RSS after start {:.0} MiB, after 2000 Gets {:.0} MiB",
        median(restarts.clone()),
        restarts
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(rss_start),
        median(rss_read),
    );
    matching_step(dir.path(), total).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sizes =
        std::env::var("IPEX_BENCH_STORE_SIZES").unwrap_or_else(|_| "10000,100000,1000000".into());
    runtime.block_on(async {
        for size in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
            size_step(size).await;
        }
    });
}
