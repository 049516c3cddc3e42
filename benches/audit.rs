//! Audit log benchmark: append throughput through the group committer (leaves and tree nodes
//! written and flushed in batches of 1000, as under load) and inclusion-proof latency at 10^5
//! and 10^6 leaves, against the baseline of one tree-node read from the same store.
//!
//! `cargo bench --bench audit` (IPEX_BENCH_LEAVES sets the final size; default 1 000 000).

use ipex::log::merkle;
use ipex::log::note::NoteSigner;
use ipex::pb;
use ipex::storage::{Store, StoreOptions};
use std::time::{Duration, Instant};

const BATCH: u64 = 1000;

fn leaf(i: u64) -> pb::AuditLeaf {
    pb::AuditLeaf {
        time: None,
        event: Some(pb::audit_leaf::Event::Delivered(pb::MessageDelivered {
            recipient: "market-a".into(),
            inbox_no: i + 1,
            seq: i + 1,
            sender: "customs-nl".into(),
        })),
    }
}

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) % n
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn measure_proofs(store: &Store, size: u64, rng: &mut Lcg) {
    let root = store.root_at(size).unwrap();
    let mut proofs = Vec::with_capacity(2000);
    let mut reads = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let index = rng.below(size);
        let started = Instant::now();
        let proof = store.inclusion_proof(index, size).unwrap();
        proofs.push(started.elapsed());
        let leaf_hash = store.leaf_hash(index).unwrap();
        merkle::verify_inclusion(&leaf_hash, index, size, &proof, &root).unwrap();
        let index = rng.below(size);
        let started = Instant::now();
        store.leaf_hash(index).unwrap();
        reads.push(started.elapsed());
    }
    let proof_p50 = percentile(&mut proofs, 0.5);
    let proof_p99 = percentile(&mut proofs, 0.99);
    let read_p50 = percentile(&mut reads, 0.5);
    println!(
        "{size:>9} leaves  inclusion proof p50 {:>7.1} µs  p99 {:>7.1} µs  | one node read p50 {:>5.1} µs  | proof/read {:>5.1}x",
        proof_p50.as_secs_f64() * 1e6,
        proof_p99.as_secs_f64() * 1e6,
        read_p50.as_secs_f64() * 1e6,
        proof_p50.as_secs_f64() / read_p50.as_secs_f64().max(1e-9),
    );
}

fn main() {
    let total: u64 = std::env::var("IPEX_BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let signer = NoteSigner::generate("bench.local/audit").unwrap();
    let options = StoreOptions {
        verify_on_open: false,
        ..StoreOptions::default()
    };
    let store = Store::open(
        dir.path(),
        options,
        signer,
        std::sync::Arc::new(ipex::app::events::Events),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut rng = Lcg(42);
    println!("audit log: appending {total} leaves in group commits of {BATCH}, each flushed");
    let mut appended = 0u64;
    let mut segment_start = Instant::now();
    let mut segment_leaves = 0u64;
    for checkpoint in [100_000u64, total] {
        while appended < checkpoint.min(total) {
            let n = BATCH.min(total - appended);
            let leaves = (appended..appended + n).map(leaf).collect();
            runtime.block_on(store.record(leaves)).unwrap();
            appended += n;
            segment_leaves += n;
        }
        runtime.block_on(store.settled()).unwrap();
        let elapsed = segment_start.elapsed();
        println!(
            "{appended:>9} leaves  append {:>9.0} leaves/s over the last {segment_leaves} ({:.1} s)",
            segment_leaves as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
        measure_proofs(&store, appended, &mut rng);
        segment_start = Instant::now();
        segment_leaves = 0;
        if appended >= total {
            break;
        }
    }
    println!(
        "store size on disk: {:.1} MiB",
        store.size_on_disk().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    store.close().unwrap();
}
