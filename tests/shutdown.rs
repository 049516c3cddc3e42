//! Graceful shutdown of the real `ipexd` process: SIGTERM while many clients submit loses no
//! acknowledged message, lets every call in flight finish, and exits 0.

mod common;

use common::process::{connect, seizure, Ipexd, DEADLINE};
use ipex::pb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent submitters, spread over [`CONNECTIONS`] connections.
const SUBMITTERS: usize = 32;
const CONNECTIONS: usize = 4;

/// Receipts to collect before SIGTERM.
const BEFORE_STOP: usize = 300;

/// Many clients submit seizure notifications; SIGTERM arrives mid-way. Every receipt a client
/// got — before the signal or while the gateway drained — names a message found after a
/// restart on the same data directory, with the same sequence number and digest; every
/// message stored was acknowledged (calls in flight finished rather than being cut off); and
/// the process exits 0, having drained and flushed its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut gw = Ipexd::start(dir);

    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        connections.push(connect(&gw, dir).await);
    }
    let receipts = Arc::new(Mutex::new(Vec::<pb::Receipt>::new()));
    let terminated = Arc::new(AtomicBool::new(false));
    let template = seizure(String::new());
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|worker| {
            let mut clients = connections[worker % CONNECTIONS].clone();
            let receipts = receipts.clone();
            let terminated = terminated.clone();
            let template = template.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let mut envelope = template.clone();
                    envelope.id = format!("drain-{worker}-{n}");
                    let answer = clients
                        .exchange
                        .submit(pb::SubmitRequest {
                            envelope: Some(envelope),
                        })
                        .await;
                    match answer {
                        Ok(response) => receipts
                            .lock()
                            .unwrap()
                            .push(response.into_inner().receipt.unwrap()),
                        Err(status) => {
                            // The gateway refuses nothing while it runs: only the stop ends us.
                            assert!(
                                terminated.load(Ordering::SeqCst),
                                "submit failed before SIGTERM: {status:?}"
                            );
                            return n;
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();

    let loaded = Instant::now();
    while receipts.lock().unwrap().len() < BEFORE_STOP {
        assert!(
            loaded.elapsed() < DEADLINE,
            "only {} receipts in {DEADLINE:?}",
            receipts.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    terminated.store(true, Ordering::SeqCst);
    let at_signal = receipts.lock().unwrap().len();
    gw.sigterm();

    for submitter in submitters {
        tokio::time::timeout(DEADLINE, submitter)
            .await
            .expect("a submitter still runs long after SIGTERM")
            .unwrap();
    }
    drop(connections);
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.wait();
        (status, gw)
    })
    .await
    .unwrap();
    let (status, gw) = status;
    assert!(status.success(), "ipexd exited with {status} after SIGTERM");
    assert!(gw
        .logged(
            "draining: health NOT_SERVING, no new connections or calls; calls in flight may finish"
        )
        .is_some());
    assert!(
        gw.logged("shutdown_grace_ms ran out with calls still in flight; stopping anyway")
            .is_none(),
        "the drain needed more than the grace period"
    );
    let stopped = gw
        .logged("store flushed; gateway stopped")
        .expect("ipexd did not log that it flushed its store");
    drop(gw);

    let receipts = std::mem::take(&mut *receipts.lock().unwrap());
    assert!(receipts.len() >= at_signal);
    // Every stored message was acknowledged: the gateway did not cut calls off mid-way. The
    // sample seizure names market-a, so each is stored with the listing alert it raises, in
    // the same commit, right after it: receipts are seq 1, 3, 5, … and nothing else is stored.
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (0..receipts.len() as u64).map(|n| 2 * n + 1).collect();
    assert_eq!(seqs, expected, "receipts are not exactly seq 1, 3, …, 2n-1");
    assert_eq!(
        stopped["fields"]["last_seq"],
        2 * receipts.len() as u64,
        "{stopped}"
    );

    // Restart on the same directory: every acknowledged message is there.
    let gw = Ipexd::start(dir);
    let clients = connect(&gw, dir).await;
    let receipts = Arc::new(receipts);
    let readers: Vec<_> = (0..8)
        .map(|reader| {
            let mut clients = clients.clone();
            let receipts = receipts.clone();
            tokio::spawn(async move {
                for receipt in receipts.iter().skip(reader).step_by(8) {
                    let stored = clients
                        .exchange
                        .get(pb::GetRequest {
                            key: Some(pb::get_request::Key::Ref(pb::MessageRef {
                                sender: receipt.sender.clone(),
                                id: receipt.id.clone(),
                            })),
                        })
                        .await
                        .unwrap_or_else(|s| panic!("{} lost after restart: {s:?}", receipt.id))
                        .into_inner()
                        .message
                        .unwrap();
                    assert_eq!(stored.seq, receipt.seq, "{}", receipt.id);
                    assert_eq!(
                        stored.envelope_sha256, receipt.envelope_sha256,
                        "{}",
                        receipt.id
                    );
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    eprintln!(
        "{} receipts, {at_signal} of them before SIGTERM, all found after restart",
        receipts.len()
    );
}
