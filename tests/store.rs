//! The store as its operator meets it, over a real gateway with mutual TLS and a data
//! directory on disk: tiles served as the C2SP spec names them, a torn end cut at start, a
//! damaged end refused or quarantined, the index rebuilt from the log, a store of the old
//! layout refused and converted, and a rewrite of history found by the full check.

mod common;

use common::{example, get, submit, Setup};
use ipex::log::merkle::{self, Hash};
use ipex::log::record::{self, Body, Frames, LogRecord};
use ipex::log::tiles::{self, TileNodes, TileSource};
use ipex::pb;
use ipex::storage::segments;
use std::path::Path;
use tonic::Code;

/// Submits a notice, a seizure (to five inboxes), a flag and an outcome; returns receipts.
async fn traffic(gw: &common::Gateway) -> Vec<pb::Receipt> {
    let mut nl = gw.client("customs-nl").await;
    let mut market = gw.client("market-a").await;
    let mut receipts = vec![
        submit(&mut nl, example("takedown-notice.json"))
            .await
            .unwrap(),
        submit(&mut nl, example("seizure-notification.json"))
            .await
            .unwrap(),
        submit(&mut market, example("seller-flag.json"))
            .await
            .unwrap(),
        submit(&mut market, example("takedown-outcome.json"))
            .await
            .unwrap(),
    ];
    for i in 0..40 {
        let mut seizure = example("seizure-notification.json");
        seizure.id = format!("seiz-bulk-{i}");
        receipts.push(submit(&mut nl, seizure).await.unwrap());
    }
    receipts
}

/// Every receipt is answered as before: same sequence number, digest and placements.
async fn all_there(gw: &common::Gateway, receipts: &[pb::Receipt]) {
    let mut nl = gw.client("customs-nl").await;
    let mut market = gw.client("market-a").await;
    for r in receipts {
        let clients = if r.sender == "market-a" {
            &mut market
        } else {
            &mut nl
        };
        let stored = get(clients, &r.sender, &r.id)
            .await
            .unwrap_or_else(|s| panic!("{} is gone: {s:?}", r.id));
        assert_eq!(
            (stored.seq, &stored.envelope_sha256),
            (r.seq, &r.envelope_sha256)
        );
    }
    let mut rilo = gw.client("rilo-we").await;
    let inbox = common::inbox(&mut rilo).await;
    let numbers: Vec<u64> = inbox.iter().map(|m| m.inbox_no).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    let placed = receipts
        .iter()
        .filter(|r| r.placements.iter().any(|p| p.recipient == "rilo-we"))
        .count();
    assert!(
        inbox.len() >= placed && placed >= 41,
        "{} < {placed}",
        inbox.len()
    );
    let found = nl
        .exchange
        .search(pb::SearchRequest {
            seller: "S-88412907".into(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert!(
        found.len() >= 2,
        "search by seller finds the flag and the seizures"
    );
}

/// The segment files of a data directory.
fn segment_files(data: &Path) -> Vec<std::path::PathBuf> {
    segments::list(&data.join("log"))
        .unwrap()
        .into_iter()
        .map(|n| data.join("log").join(format!("{n:08}.seg")))
        .collect()
}

/// Tiles fetched from the `Audit` service by their spec paths.
struct Fetched(std::collections::HashMap<(u8, u64), Vec<Hash>>);

impl TileSource for Fetched {
    type Error = tiles::TooNarrow;
    fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, tiles::TooNarrow> {
        self.0
            .get(&(level, index))
            .cloned()
            .ok_or(tiles::TooNarrow {
                level,
                index,
                have: 0,
                want: 0,
            })
    }
}

/// A client computes the signed root from tiles it fetched by their C2SP paths alone; tiles
/// beyond the tree are NOT_FOUND and a malformed path is INVALID_ARGUMENT naming `path`.
#[tokio::test]
async fn tiles_by_their_spec_paths_give_the_signed_root() {
    let setup = Setup::new();
    let gw = setup.start().await;
    traffic(&gw).await;
    let mut nl = gw.client("customs-nl").await;
    let cp = nl
        .audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let size = cp.tree_size;
    assert!(size > 256, "{size} leaves: more than one level-0 tile");
    let mut fetched = std::collections::HashMap::new();
    for level in 0..2u8 {
        let entries = size >> (8 * u32::from(level));
        for index in 0..=(entries / 256) {
            let width = (entries - index * 256).min(256);
            if width == 0 {
                continue;
            }
            let path = tiles::path(level, index, width);
            let tile = nl
                .audit
                .get_tile(pb::GetTileRequest { path: path.clone() })
                .await
                .unwrap_or_else(|s| panic!("{path}: {s:?}"))
                .into_inner()
                .tile;
            assert_eq!(tile.len() as u64, width * 32, "{path}");
            fetched.insert((level, index), tiles::decode(&tile).unwrap());
        }
    }
    let root = merkle::root_at(size, &TileNodes(Fetched(fetched))).unwrap();
    assert_eq!(root.to_vec(), cp.root_hash);

    let beyond = tiles::path(0, size / 256 + 1, 256);
    let err = nl
        .audit
        .get_tile(pb::GetTileRequest { path: beyond })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = nl
        .audit
        .get_tile(pb::GetTileRequest {
            path: "tile/0/1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&err), ["path"]);
    gw.stop().await;
}

/// A record cut off by a crash at the end of the log (never acknowledged) is cut at the next
/// start, and everything acknowledged before it is served; the log grows from there.
#[tokio::test]
async fn a_torn_end_is_cut_and_nothing_acknowledged_is_lost() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let receipts = traffic(&gw).await;
    gw.stop().await;
    let last = segment_files(&setup.config.data_dir).pop().unwrap();
    let whole = std::fs::metadata(&last).unwrap().len();
    // Half a frame: its header promises 300 bytes, 40 arrived.
    let mut torn = Vec::new();
    record::frame(&[7u8; 300], &mut torn);
    torn.truncate(40);
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&last, &bytes).unwrap();

    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    // The reads since were appended where the torn record was: every frame is whole.
    let bytes = std::fs::read(&last).unwrap();
    assert!(bytes.len() as u64 > whole);
    for frame in Frames::new(&bytes[8..], 8) {
        frame.unwrap();
    }
    let mut nl = gw.client("customs-nl").await;
    let mut more = example("seizure-notification.json");
    more.id = "after-the-cut".into();
    let receipt = submit(&mut nl, more).await.unwrap();
    assert_eq!(receipt.seq, receipts.len() as u64 + 1);
    gw.stop().await;
    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    gw.stop().await;
}

/// A flipped bit in the last record (acknowledged data) refuses the start, naming it; told to
/// quarantine, the gateway moves the damaged end aside and starts.
#[tokio::test]
async fn a_damaged_end_is_refused_or_quarantined() {
    let mut setup = Setup::new();
    let gw = setup.start().await;
    let receipts = traffic(&gw).await;
    gw.stop().await;
    let last = segment_files(&setup.config.data_dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    // The last record of a stopped store ends its last commit.
    let mut at = 0;
    for frame in Frames::new(&bytes[8..], 8) {
        at = frame.unwrap().0;
    }
    let end = bytes.len() - 1;
    bytes[end] ^= 0x40;
    std::fs::write(&last, &bytes).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = ipex::server::run(listener, setup.config.clone(), std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("at offset {at}")), "{err}");
    assert!(err.contains("store.quarantine"), "{err}");

    setup.config.store.quarantine = true;
    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    gw.stop().await;
    let aside = setup.config.data_dir.join("quarantine");
    let moved: Vec<_> = std::fs::read_dir(&aside).unwrap().collect();
    assert_eq!(moved.len(), 1, "the damaged end is kept in quarantine/");
}

/// The index can be deleted: `ipex store reindex` (or the next start by itself) rebuilds it
/// from the log, and every read answers as before.
#[tokio::test]
async fn the_index_is_rebuilt_from_the_log() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let receipts = traffic(&gw).await;
    gw.stop().await;
    let index = setup.config.data_dir.join("index");

    std::fs::remove_dir_all(&index).unwrap();
    let report = ipex::admin::reindex(&setup.config.data_dir).unwrap();
    assert!(report["recordsReplayed"].as_u64().unwrap() > receipts.len() as u64 * 2);
    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    gw.stop().await;

    // Without the command: the start replays the whole log itself.
    std::fs::remove_dir_all(&index).unwrap();
    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    gw.stop().await;
}

/// A store of layout 1 — one sled tree at the top of the data directory — written from the
/// records of a real store, as that layout kept them.
fn write_layout_1(records: &[LogRecord], dir: &Path) {
    use ipex::storage::Engine;
    let old = ipex::storage::SledEngine::open(dir, None).unwrap();
    let mut batch = ipex::storage::WriteBatch::default();
    let num = |prefix: &[u8], n: u64| [prefix, &n.to_be_bytes()].concat();
    let mut size = 0;
    for r in records {
        match &r.body {
            Some(Body::Leaf(l)) => {
                batch.insert(&num(b"l/", l.index), &l.data);
                size = l.index + 1;
            }
            Some(Body::Message(m)) => {
                let receipt = m.receipt.as_ref().unwrap();
                batch.insert(&num(b"e/", receipt.seq), &prost::Message::encode_to_vec(m));
                let k = [
                    b"k/".as_slice(),
                    receipt.sender.as_bytes(),
                    b"\0",
                    receipt.id.as_bytes(),
                ]
                .concat();
                batch.insert(&k, &receipt.seq.to_be_bytes());
            }
            Some(Body::Checkpoint(c)) => batch.insert(&num(b"c/", size), c.note.as_bytes()),
            Some(Body::Cursor(c)) => {
                let k = [b"u/", c.participant.as_bytes(), b"\0", c.name.as_bytes()].concat();
                batch.insert(&k, &c.seq.to_be_bytes());
            }
            _ => {}
        }
    }
    old.apply(batch).unwrap();
    old.flush().unwrap();
}

fn records(data: &Path) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for file in segment_files(data) {
        let bytes = std::fs::read(file).unwrap();
        for frame in Frames::new(&bytes[8..], 8) {
            let (offset, payload) = frame.unwrap();
            out.push(record::decode(payload, offset).unwrap());
        }
    }
    out
}

/// A data directory of the old layout is refused, naming its layout and the command that
/// converts it; `ipex store migrate` converts it, and the converted store serves every
/// receipt, verifies against the checkpoints signed before the conversion, and keeps its
/// subscription cursors.
#[tokio::test]
async fn an_old_store_is_refused_then_migrated() {
    let mut setup = Setup::new();
    let gw = setup.start().await;
    let receipts = traffic(&gw).await;
    let mut rilo = gw.client("rilo-we").await;
    rilo.exchange
        .subscribe(pb::SubscribeRequest {
            durable_name: "feed".into(),
            start: Some(pb::subscribe_request::Start::FromSeq(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    rilo.exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: 7,
        })
        .await
        .unwrap();
    drop(rilo);
    gw.stop().await;
    let old = setup.path().join("old-data");
    write_layout_1(&records(&setup.config.data_dir), &old);

    setup.config.data_dir = old.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = ipex::server::run(listener, setup.config.clone(), std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("layout version 1"), "{err}");
    assert!(
        err.contains(&format!("ipex store migrate --from {}", old.display())),
        "{err}"
    );

    let new = setup.path().join("new-data");
    let report = ipex::admin::migrate(&old, &new).unwrap();
    assert_eq!(report["messages"], receipts.len() as u64, "{report}");
    assert_eq!(report["cursors"], 1, "{report}");
    setup.config.data_dir = new;
    let gw = setup.start().await;
    all_there(&gw, &receipts).await;
    let mut nl = gw.client("customs-nl").await;
    let verified = ipex::cli::audit::verify_online(
        &mut nl.audit,
        &setup.path().join("state.json"),
        None,
        5,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(verified["verified"], true);
    let mut rilo = gw.client("rilo-we").await;
    let acked = rilo
        .exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        acked.acked_seq, 7,
        "the cursor came across and never moves back"
    );
    gw.stop().await;
}

/// Someone rewrites a leaf of a stopped store with a valid checksum. The start does not read
/// that far back (it checks the tail since the last checkpoint); the full check does, and says
/// which leaf.
#[tokio::test]
async fn a_rewritten_history_is_found_by_the_full_check() {
    let setup = Setup::new();
    let gw = setup.start().await;
    traffic(&gw).await;
    let mut nl = gw.client("customs-nl").await;
    let vkey = nl
        .audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .verifier_key;
    drop(nl);
    gw.stop().await;
    let data = &setup.config.data_dir;
    assert_eq!(
        ipex::admin::verify_full(data, Some(&vkey)).unwrap()["verified"],
        true
    );

    // Rewrite leaf 3's record in place: a different reader, same length, valid checksum.
    let file = segment_files(data).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let (offset, mut leaf) = Frames::new(&bytes[8..], 8)
        .map(|f| f.unwrap())
        .find_map(
            |(offset, payload)| match record::decode(payload, offset).unwrap().body {
                Some(Body::Leaf(l)) if l.index == 3 => Some((offset, l)),
                _ => None,
            },
        )
        .unwrap();
    let at = leaf
        .data
        .windows(10)
        .position(|w| w == b"customs-nl")
        .unwrap();
    leaf.data[at + 9] = b'x';
    let mut frame = Vec::new();
    record::frame_record(
        &LogRecord {
            body: Some(Body::Leaf(leaf)),
        },
        &mut frame,
    );
    bytes[offset as usize..offset as usize + frame.len()].copy_from_slice(&frame);
    std::fs::write(&file, &bytes).unwrap();

    let err = ipex::admin::verify_full(data, Some(&vkey)).unwrap_err();
    assert!(err.contains("leaf 3"), "{err}");

    // A running store finds it in the background, and says so in its stats (the metrics).
    let key = std::fs::read_to_string(setup.path().join("audit.key")).unwrap();
    let signer = ipex::log::note::NoteSigner::from_private_key(key.trim()).unwrap();
    let store = ipex::storage::Store::open(
        data,
        ipex::storage::StoreOptions {
            scrub_interval: Some(std::time::Duration::from_millis(50)),
            ..Default::default()
        },
        signer,
        std::sync::Arc::new(ipex::app::events::Events),
    )
    .expect("the start does not re-hash what a checkpoint already covers");
    let stats = store.scrub_stats();
    let found = common::eventually(20, || {
        let stats = stats.clone();
        async move { stats.failures.load(std::sync::atomic::Ordering::Relaxed) > 0 }
    })
    .await;
    assert!(
        found,
        "the background check did not find the rewritten leaf"
    );
    assert_eq!(stats.last_ok.load(std::sync::atomic::Ordering::Relaxed), 0);
    store.close().unwrap();
}

/// A Submit answers once its batch is durable, before the batch is in the index; every read
/// the caller makes after the answer still finds what was stored. Other senders keep batches
/// in flight all along, so that the index is often a batch or two behind the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_submit_answered_every_read_after_it_finds() {
    let gw = Setup::new().start().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for task in 0..8 {
        let mut market = gw.client("market-b").await;
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                let mut flag = example("seller-flag.json");
                flag.id = format!("flag-load-{task}-{n}");
                submit(&mut market, flag).await.unwrap();
                n += 1;
            }
        }));
    }
    let mut nl = gw.client("customs-nl").await;
    let mut market = gw.client("market-a").await;
    let mut inbox_after = 0;
    for round in 0..150 {
        let mut notice = example("takedown-notice.json");
        notice.id = format!("tdn-settled-{round}");
        let receipt = submit(&mut nl, notice.clone()).await.unwrap();
        // Get by (sender, id) and by seq.
        let got = get(&mut market, "customs-nl", &notice.id).await.unwrap();
        assert_eq!(got.seq, receipt.seq, "round {round}");
        let by_seq = market
            .exchange
            .get(pb::GetRequest {
                key: Some(pb::get_request::Key::Seq(receipt.seq)),
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: Get by seq {}: {e}", receipt.seq));
        assert!(by_seq.into_inner().message.is_some());
        // The next page of the inbox holds it.
        let page = market
            .exchange
            .list_inbox(pb::ListInboxRequest {
                after: inbox_after,
                limit: 10,
                kinds: vec![],
            })
            .await
            .unwrap()
            .into_inner()
            .messages;
        let last = page
            .last()
            .unwrap_or_else(|| panic!("round {round}: empty inbox page"));
        assert_eq!(
            last.envelope.as_ref().unwrap().id,
            notice.id,
            "round {round}"
        );
        inbox_after = last.inbox_no;
        // An answer may ref it at once.
        let mut outcome = example("takedown-outcome.json");
        outcome.id = format!("tdo-settled-{round}");
        outcome.refs[0].id = notice.id.clone();
        submit(&mut market, outcome)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the outcome was refused: {e}"));
        // Its acceptance leaf is provable in a tree that holds it.
        nl.audit
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf_index: receipt.leaf_index,
                tree_size: receipt.leaf_index + 1,
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: inclusion proof: {e}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    gw.stop().await;
}

/// An index written before its format was recorded (or in an older one) is rebuilt from the
/// log at start: the new postings (refs, case references, listing URLs) then cover the
/// messages stored before, and every message is still served.
#[tokio::test]
async fn an_index_of_an_older_format_is_rebuilt_from_the_log() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let notice = submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    let mut a = gw.client("market-a").await;
    submit(&mut a, example("takedown-outcome.json"))
        .await
        .unwrap();
    gw.stop().await;

    // An index as the previous release left it: no format, no postings of refs.
    let index = setup.config.data_dir.join("index");
    {
        use ipex::storage::Engine;
        let engine = ipex::storage::SledEngine::open(&index, None).unwrap();
        let mut batch = ipex::storage::WriteBatch::default();
        batch.insert(b"v/format", &1u32.to_be_bytes());
        engine.apply(batch).unwrap();
        let refs: Vec<Vec<u8>> = engine
            .range(b"x/r/", b"x/r0", false)
            .map(|e| e.unwrap().0)
            .collect();
        assert!(!refs.is_empty(), "the outcome's ref is posted");
        engine.flush().unwrap();
    }

    let key = std::fs::read_to_string(setup.path().join("audit.key")).unwrap();
    let signer = ipex::log::note::NoteSigner::from_private_key(key.trim()).unwrap();
    let store = ipex::storage::Store::open(
        &setup.config.data_dir,
        ipex::storage::StoreOptions::default(),
        signer,
        std::sync::Arc::new(ipex::app::events::Events),
    )
    .unwrap();
    assert!(store.replayed_at_open() >= 2, "the index was not rebuilt");
    assert_eq!(
        store
            .get_by_ref("customs-nl", "tdn-2026-0001")
            .unwrap()
            .unwrap()
            .receipt
            .seq,
        notice.seq
    );
    store.close().unwrap();
}
