//! The conformance suite of [`Engine`]: what the store relies on, checked against every
//! engine. A new engine is added by one module and one line in [`engines`].

use super::engine::{Engine, SledEngine, WriteBatch};
use std::path::Path;

/// Every engine, by name, with a way to open it in a directory.
type Open = fn(&Path) -> Box<dyn Engine>;

fn engines() -> Vec<(&'static str, Open)> {
    vec![("sled", |dir| Box::new(SledEngine::open(dir, None).unwrap()))]
}

fn batch(writes: &[(&[u8], &[u8])]) -> WriteBatch {
    let mut b = WriteBatch::default();
    for (k, v) in writes {
        b.insert(k, v);
    }
    b
}

fn keys(entries: super::engine::Entries<'_>) -> Vec<Vec<u8>> {
    entries.map(|e| e.unwrap().0).collect()
}

#[test]
fn get_returns_what_was_applied_and_nothing_else() {
    for (name, open) in engines() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        assert_eq!(engine.get(b"a").unwrap(), None, "{name}");
        engine
            .apply(batch(&[(b"a", b"1"), (b"b", b""), (b"a", b"2")]))
            .unwrap();
        // A later write of the same key in one batch wins; empty values are values.
        assert_eq!(engine.get(b"a").unwrap(), Some(b"2".to_vec()), "{name}");
        assert_eq!(engine.get(b"b").unwrap(), Some(Vec::new()), "{name}");
        assert_eq!(engine.get(b"c").unwrap(), None, "{name}");
    }
}

#[test]
fn ranges_are_half_open_and_ordered_by_bytes_both_ways() {
    for (name, open) in engines() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let written: Vec<Vec<u8>> = [1u64, 2, 255, 256, 65536, u64::MAX]
            .iter()
            .map(|n| [b"e/".as_slice(), &n.to_be_bytes()].concat())
            .collect();
        let mut b = WriteBatch::default();
        for k in written.iter().rev() {
            b.insert(k, b"x");
        }
        b.insert(b"f/", b"other prefix");
        engine.apply(b).unwrap();
        let from = [b"e/".as_slice(), &2u64.to_be_bytes()].concat();
        let to = [b"e/".as_slice(), &65536u64.to_be_bytes()].concat();
        assert_eq!(
            keys(engine.range(&from, &to, false)),
            written[1..4].to_vec(),
            "{name}"
        );
        let mut reversed = written[1..4].to_vec();
        reversed.reverse();
        assert_eq!(keys(engine.range(&from, &to, true)), reversed, "{name}");
        assert!(keys(engine.range(&to, &from, false)).is_empty(), "{name}");
    }
}

#[test]
fn last_in_finds_the_greatest_key_of_a_prefix_only() {
    for (name, open) in engines() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        assert_eq!(engine.last_in(b"i/").unwrap(), None, "{name}");
        engine
            .apply(batch(&[
                (b"i/a\0\x01", b"1"),
                (b"i/a\0\xff", b"2"),
                (b"i/b\0\x01", b"3"),
                (b"i/a", b"4"),
            ]))
            .unwrap();
        assert_eq!(
            engine.last_in(b"i/a\0").unwrap(),
            Some((b"i/a\0\xff".to_vec(), b"2".to_vec())),
            "{name}"
        );
        assert_eq!(
            engine.last_in(b"i/").unwrap().map(|e| e.0),
            Some(b"i/b\0\x01".to_vec()),
            "{name}"
        );
        assert_eq!(engine.last_in(b"i/c").unwrap(), None, "{name}");
    }
}

#[test]
fn flushed_writes_survive_a_reopen() {
    for (name, open) in engines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = open(dir.path());
            engine.apply(batch(&[(b"k/s\0id", b"7")])).unwrap();
            engine.flush().unwrap();
            assert!(engine.size_on_disk().unwrap() > 0, "{name}");
        }
        let engine = open(dir.path());
        assert_eq!(
            engine.get(b"k/s\0id").unwrap(),
            Some(b"7".to_vec()),
            "{name}"
        );
    }
}
