//! Crashes of the real `ipexd`: killed with SIGKILL while clients submit, several times over
//! on one data directory. Nothing a client was told is stored may be lost, nor what the
//! gateway raised from it.

mod common;

use common::process::{connect, seizure, Ipexd, DEADLINE};
use ipex::cli::client::Clients;
use ipex::pb;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Crashes in one test.
const ROUNDS: usize = 3;
/// Concurrent submitters per round, over two connections.
const SUBMITTERS: usize = 8;
/// Receipts each round collects before the kill (plus what is in flight then).
const BEFORE_KILL: usize = 150;

/// Receipts as the submitters receive them, and the submitters.
type Load = (
    Arc<Mutex<Vec<pb::Receipt>>>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Starts `SUBMITTERS` tasks that submit until their calls fail after `stop` is set; returns
/// once `BEFORE_KILL` receipts arrived, with the tasks still running.
async fn load(clients: &[Clients], round: usize, stop: Arc<AtomicBool>) -> Load {
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|worker| {
            let mut clients = clients[worker % clients.len()].clone();
            let (receipts, stop) = (receipts.clone(), stop.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let envelope = seizure(format!("crash-{round}-{worker}-{n}"));
                    let request = pb::SubmitRequest {
                        envelope: Some(envelope),
                    };
                    match clients.exchange.submit(request).await {
                        Ok(r) => receipts
                            .lock()
                            .unwrap()
                            .push(r.into_inner().receipt.unwrap()),
                        Err(status) => {
                            assert!(
                                stop.load(Ordering::SeqCst),
                                "submit failed before the kill: {status:?}"
                            );
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while receipts.lock().unwrap().len() < BEFORE_KILL {
        assert!(started.elapsed() < DEADLINE, "the gateway does not accept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    (receipts, tasks)
}

/// Every inbox entry of `participant`, in order: `(inbox_no, seq)`.
async fn whole_inbox(clients: &mut Clients) -> Vec<(u64, u64)> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = clients
            .exchange
            .list_inbox(pb::ListInboxRequest {
                after,
                limit: 1000,
                kinds: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        if page.messages.is_empty() {
            return entries;
        }
        for m in &page.messages {
            entries.push((m.inbox_no, m.seq));
        }
        after = page.next_after;
    }
}

/// Three times over: submitters run, the gateway is killed with SIGKILL mid-stream, and it
/// restarts on the same directory. After each restart every receipt any client received is
/// there with the same sequence number and digest, each inbox is numbered 1, 2, 3, … without
/// a gap, sequence numbers have no gap, and `ipex audit verify` passes over the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut acknowledged: Vec<pb::Receipt> = Vec::new();
    for round in 0..ROUNDS {
        let mut gw = Ipexd::start(dir);
        let clients = vec![connect(&gw, dir).await, connect(&gw, dir).await];
        let stop = Arc::new(AtomicBool::new(false));
        let (receipts, submitters) = load(&clients, round, stop.clone()).await;
        // Killed while the submitters still run: some calls are in flight.
        tokio::task::spawn_blocking(move || {
            gw.sigkill();
            gw
        })
        .await
        .unwrap();
        for submitter in submitters {
            tokio::time::timeout(DEADLINE, submitter)
                .await
                .expect("a submitter still runs after the kill")
                .unwrap();
        }
        acknowledged.extend(std::mem::take(&mut *receipts.lock().unwrap()));
        drop(clients);

        let gw = Ipexd::start(dir);
        let mut customs = connect(&gw, dir).await;
        let mut by_seq = HashMap::new();
        for receipt in &acknowledged {
            let stored = customs
                .exchange
                .get(pb::GetRequest {
                    key: Some(pb::get_request::Key::Ref(pb::MessageRef {
                        sender: receipt.sender.clone(),
                        id: receipt.id.clone(),
                    })),
                })
                .await
                .unwrap_or_else(|s| panic!("round {round}: {} lost: {s:?}", receipt.id))
                .into_inner()
                .message
                .unwrap();
            assert_eq!(stored.seq, receipt.seq, "{}", receipt.id);
            assert_eq!(stored.envelope_sha256, receipt.envelope_sha256);
            assert!(by_seq.insert(receipt.seq, receipt.id.clone()).is_none());
            // The listing alert the seizure raised for market-a (the sample names it) was
            // stored in its commit: it survived with it, right after it.
            let alert = customs
                .exchange
                .get(pb::GetRequest {
                    key: Some(pb::get_request::Key::Ref(pb::MessageRef {
                        sender: receipt.sender.clone(),
                        id: format!("ipex:alert:market-a:{}", receipt.id),
                    })),
                })
                .await
                .unwrap_or_else(|s| panic!("round {round}: alert of {} lost: {s:?}", receipt.id))
                .into_inner()
                .message
                .unwrap();
            assert_eq!(alert.seq, receipt.seq + 1, "{}", receipt.id);
        }
        // Every placement a receipt named is in the recipient's inbox, numbered without gaps.
        let mut rilo = Clients::new(
            ipex::cli::client::connect(
                &gw.endpoint(),
                &ipex::cli::client::ClientTls::dev(&dir.join("certs/dev"), "rilo-we").unwrap(),
            )
            .await
            .unwrap(),
        );
        let inbox = whole_inbox(&mut rilo).await;
        for (i, (no, _)) in inbox.iter().enumerate() {
            assert_eq!(*no, i as u64 + 1, "round {round}: inbox numbers have a gap");
        }
        assert!(inbox.windows(2).all(|w| w[0].1 < w[1].1));
        for receipt in &acknowledged {
            let placement = receipt
                .placements
                .iter()
                .find(|p| p.recipient == "rilo-we")
                .expect("the seizure is broadcast to rilo-we");
            assert_eq!(
                inbox.get(placement.inbox_no as usize - 1),
                Some(&(placement.inbox_no, receipt.seq)),
                "round {round}: {}",
                receipt.id
            );
        }
        // Sequence numbers have no gap: the last one stored has all before it.
        let last = inbox.last().map_or(0, |e| e.1);
        for seq in 1..=last {
            customs
                .exchange
                .get(pb::GetRequest {
                    key: Some(pb::get_request::Key::Seq(seq)),
                })
                .await
                .unwrap_or_else(|s| panic!("round {round}: seq {seq} missing: {s:?}"));
        }
        // The whole log verifies against its signed checkpoint.
        let state = dir.join(format!("audit-state-{round}.json"));
        let report = ipex::cli::audit::verify_online(
            &mut customs.audit,
            &state,
            None,
            5,
            &Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("round {round}: audit verify failed: {e}"));
        assert_eq!(report["verified"], true, "{report}");
        drop((customs, rilo));
        let mut gw = gw;
        tokio::task::spawn_blocking(move || {
            gw.sigterm();
            gw.wait()
        })
        .await
        .unwrap();
    }
    eprintln!(
        "{} acknowledged messages over {ROUNDS} crashes, all found",
        acknowledged.len()
    );
}
