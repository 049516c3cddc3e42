//! The layers of `src/` point one way. Reads the `crate::…`, `super::…` and child-module paths
//! of every source file (comments and inline test modules left out), and fails, naming the
//! files, when a layer uses one above it (or a sibling of the same rank), when the client uses
//! the gateway's internals, or when files use each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A layer may use the layers of a lower rank only; layers of the
/// same rank may not use each other. `src/lib.rs` draws the same picture.
const RANKS: &[(&str, u8)] = &[
    ("pb", 0),
    ("domain", 1),
    ("log", 2),
    ("auth", 2),
    ("ops", 2),
    ("storage", 3),
    ("app", 4),
    ("grpc", 5),
    ("dev", 5),
    ("federation", 5),
    ("server", 6),
    ("admin", 6),
    ("cli", 7),
];

/// What the `ipex` client may not use although their rank is lower: the gateway's internals.
const CLIENT_MAY_NOT_USE: &[&str] = &["app", "storage", "grpc", "auth"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/storage/keys.rs` → `["storage", "keys"]`,
/// `src/storage/mod.rs` → `["storage"]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file that defines module `path`, if it is a file of its own.
fn file_of(path: &[String]) -> Option<PathBuf> {
    let mut base = src();
    for p in path {
        base.push(p);
    }
    let as_file = base.with_extension("rs");
    if as_file.is_file() {
        return Some(as_file);
    }
    let as_dir = base.join("mod.rs");
    as_dir.is_file().then_some(as_dir)
}

/// The file an item path resolves to: the deepest module along it that is a file.
fn resolve(path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| file_of(&path[..n]))
}

/// The code of a file without comments, string literals' contents and inline test modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim()).unwrap_or_default();
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
        }
        let without_comment = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        // Paths inside string literals ("crate::…" in a message) are no imports.
        let mut in_string = false;
        for c in without_comment.chars() {
            if c == '"' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// Every path the code names: `crate::a::b`, `super::a`, `self::a`, and (in a file with
/// child modules) `child::…`. Grouped imports `crate::{a, b::c}` count once per branch.
fn paths(code: &str, children: &[String]) -> Vec<(String, Vec<String>)> {
    let tokens: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < tokens.len() {
        if !is_ident(tokens[i]) || (i > 0 && (is_ident(tokens[i - 1]) || tokens[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < tokens.len() && is_ident(tokens[i]) {
            i += 1;
        }
        let head: String = tokens[start..i].iter().collect();
        let roots = ["crate", "super", "self"];
        if !(roots.contains(&head.as_str()) || children.contains(&head)) {
            continue;
        }
        // Read `::segment` repeatedly, expanding one level of `{a, b}`.
        let mut segments = Vec::new();
        let mut branches = Vec::new();
        loop {
            if tokens.get(i) == Some(&':') && tokens.get(i + 1) == Some(&':') {
                i += 2;
                if tokens.get(i) == Some(&'{') {
                    let close = (i..tokens.len()).find(|&j| tokens[j] == '}').unwrap_or(i);
                    let inner: String = tokens[i + 1..close].iter().collect();
                    for branch in inner.split(',') {
                        let seg: Vec<String> = branch
                            .split("::")
                            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                            .take_while(|s| !s.is_empty() && s.chars().all(is_ident))
                            .collect();
                        branches.push(seg);
                    }
                    i = close + 1;
                    break;
                }
                let s = i;
                while i < tokens.len() && is_ident(tokens[i]) {
                    i += 1;
                }
                segments.push(tokens[s..i].iter().collect::<String>());
            } else {
                break;
            }
        }
        if segments.is_empty() && branches.is_empty() {
            continue;
        }
        if branches.is_empty() {
            out.push((head.clone(), segments));
        } else {
            for b in branches {
                out.push((head.clone(), [segments.clone(), b].concat()));
            }
        }
    }
    out
}

/// The file → files it uses.
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph = BTreeMap::new();
    for file in files {
        if file.starts_with(src().join("bin")) {
            continue;
        }
        let module = module_of(&file);
        let is_dir_module = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        let dir = file.parent().unwrap();
        let children: Vec<String> = if is_dir_module {
            std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| {
                    let p = e.unwrap().path();
                    let name = p.file_stem()?.to_string_lossy().into_owned();
                    let child = p.is_dir() && p.join("mod.rs").is_file()
                        || p.extension().is_some_and(|x| x == "rs") && name != "mod";
                    (child && name != "lib").then_some(name)
                })
                .collect()
        } else {
            Vec::new()
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let mut uses = BTreeSet::new();
        for (head, segments) in paths(&code(&text), &children) {
            let absolute: Vec<String> = match head.as_str() {
                "crate" => segments,
                "self" => [module.clone(), segments].concat(),
                "super" if is_dir_module => {
                    [module[..module.len().saturating_sub(1)].to_vec(), segments].concat()
                }
                "super" => [module[..module.len() - 1].to_vec(), segments].concat(),
                child => [module.clone(), vec![child.to_string()], segments].concat(),
            };
            if let Some(target) = resolve(&absolute) {
                if target != file {
                    uses.insert(target);
                }
            }
        }
        graph.insert(file, uses);
    }
    graph
}

/// The layer of a file: its folder under `src/`, or its own name at the top.
fn layer(file: &Path) -> Option<String> {
    let module = module_of(file);
    module.first().cloned()
}

fn rank(layer: &str) -> Option<u8> {
    RANKS.iter().find(|(l, _)| *l == layer).map(|(_, r)| *r)
}

fn short(file: &Path) -> String {
    file.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .display()
        .to_string()
}

/// The circles of the graph (strongly connected components of more than one file).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Kosaraju: order by finish time, then collect on the reversed graph.
    fn visit(
        n: &PathBuf,
        g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        seen: &mut BTreeSet<PathBuf>,
        order: &mut Vec<PathBuf>,
    ) {
        if !seen.insert(n.clone()) {
            return;
        }
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, seen, order);
        }
        order.push(n.clone());
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in graph.keys() {
        visit(n, graph, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (n, ms) in graph {
        for m in ms {
            reversed.entry(m.clone()).or_default().insert(n.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.iter().rev() {
        let mut component = Vec::new();
        visit(n, &reversed, &mut assigned, &mut component);
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

/// Every arrow between layers points down, and the client uses no gateway internals.
#[test]
fn layers_point_down() {
    let mut wrong = Vec::new();
    for (file, uses) in graph() {
        let Some(from) = layer(&file) else { continue };
        let Some(from_rank) = rank(&from) else {
            wrong.push(format!("{}: layer {from:?} is not in RANKS", short(&file)));
            continue;
        };
        for target in uses {
            let Some(to) = layer(&target) else { continue };
            if to == from {
                continue;
            }
            let to_rank = rank(&to).unwrap_or(u8::MAX);
            if to_rank >= from_rank {
                wrong.push(format!(
                    "{} ({from}) uses {} ({to}), a layer {}",
                    short(&file),
                    short(&target),
                    if to_rank == from_rank {
                        "of the same rank"
                    } else {
                        "above it"
                    }
                ));
            } else if from == "cli" && CLIENT_MAY_NOT_USE.contains(&to.as_str()) {
                wrong.push(format!(
                    "{} (cli) uses {} ({to}): the client imports no gateway internals",
                    short(&file),
                    short(&target)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layers:\n  {}", wrong.join("\n  "));
}

/// No two files use each other, directly or around a longer circle.
#[test]
fn files_form_no_circle() {
    let graph = graph();
    let found: Vec<String> = circles(&graph)
        .iter()
        .map(|c| {
            let names: Vec<String> = c.iter().map(|f| short(f)).collect();
            let pairs: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("{} -> {}", short(a), short(b)))
                })
                .collect();
            format!("{} ({})", names.join(", "), pairs.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "circles:\n  {}", found.join("\n  "));
}

/// The reader itself: the paths it sees in a sample, so a change to it that stops it seeing
/// imports fails here instead of passing every layout.
#[test]
fn the_reader_sees_imports() {
    let sample = r#"
        use crate::storage::{keys, Store};
        use super::events::{self, Refusal};
        // use crate::app::Gateway;   (a comment: not an import)
        fn f() { let _ = "crate::grpc::x"; crate::log::merkle::leaf_hash(b""); keys::leaf(0); }
    "#;
    let got = paths(&code(sample), &["keys".to_string()]);
    let want: Vec<(String, Vec<String>)> = vec![
        ("crate".into(), vec!["storage".into(), "keys".into()]),
        ("crate".into(), vec!["storage".into(), "Store".into()]),
        ("super".into(), vec!["events".into(), "self".into()]),
        ("super".into(), vec!["events".into(), "Refusal".into()]),
        (
            "crate".into(),
            vec!["log".into(), "merkle".into(), "leaf_hash".into()],
        ),
        ("keys".into(), vec!["leaf".into()]),
    ];
    assert_eq!(got, want);
    assert!(graph()
        .values()
        .any(|uses| uses.contains(&src().join("pb/mod.rs"))));
}
