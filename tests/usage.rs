//! The command line of `ipex` as a user meets it: every subcommand answers `--help`, every
//! `ipex` command line of the README parses, and every flag of every subcommand can be given
//! together with the global ones (a clash of two flags' names panics at parse time, as
//! `audit verify --key` once did).

use clap::{CommandFactory, Parser};
use ipex::cli::args::Cli;

/// Every subcommand path: `["audit", "verify"]`, ….
fn subcommands(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands() {
        let mut path = prefix.clone();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        subcommands(sub, path, out);
    }
}

/// clap's own consistency checks of the whole command tree (duplicate ids, conflicting
/// definitions), which otherwise only fire when the clashing flag is used.
#[test]
fn the_command_tree_is_consistent() {
    Cli::command().debug_assert();
}

/// `--help` of every subcommand prints help (and does not panic).
#[test]
fn every_subcommand_answers_help() {
    let mut paths = Vec::new();
    subcommands(&Cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() >= 15, "{paths:?}");
    for path in paths {
        let args = ["ipex".to_string()]
            .into_iter()
            .chain(path.iter().cloned())
            .chain(["--help".to_string()]);
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::DisplayHelp,
            "{path:?}: {err}"
        );
    }
}

/// The `ipex` command lines of the README, as a shell would split them.
fn readme_command_lines() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut lines = Vec::new();
    // Inside a block of shell commands (```sh), a line may start with `ipex` itself.
    let mut in_code = false;
    let mut shell = false;
    for line in readme.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            in_code = !in_code;
            shell = in_code && info.trim() == "sh";
            continue;
        }
        let in_code = in_code && shell;
        let bare = (in_code && line.trim_start().starts_with("ipex "))
            .then(|| line.len() - line.trim_start().len() + "ipex ".len());
        let Some(at) = ["cargo run --bin ipex -- ", "target/release/ipex "]
            .iter()
            .find_map(|p| line.find(p).map(|i| i + p.len()))
            .or(bare)
        else {
            continue;
        };
        let mut rest = &line[at..];
        if let Some(comment) = rest.find(" #") {
            rest = &rest[..comment];
        }
        // The shell's redirection is not the command's.
        if let Some(redirect) = rest.find(" > ") {
            rest = &rest[..redirect];
        }
        let rest = rest.trim().trim_end_matches(')');
        let words: Vec<String> = rest
            .split_whitespace()
            .map(|w| w.trim_matches('"').replace("$TOKEN", "a.b.c"))
            .collect();
        lines.push(words);
    }
    lines
}

/// Every `ipex` command line the README shows parses.
#[test]
fn every_readme_command_line_parses() {
    let lines = readme_command_lines();
    assert!(lines.len() >= 20, "{lines:?}");
    for words in lines {
        let args = std::iter::once("ipex".to_string()).chain(words.iter().cloned());
        if let Err(err) = Cli::try_parse_from(args) {
            panic!(
                "README line `ipex {}` does not parse: {err}",
                words.join(" ")
            );
        }
    }
}

/// Every flag the README's synopsis names, all at once with the global flags.
#[test]
fn every_documented_flag_combination_parses() {
    let global = "--gateway https://127.0.0.1:1 --cert c.pem --key c.key --ca ca.pem \
                  --certs-dir certs/dev --server-name localhost --token a.b.c";
    let filters = "--kind seizure --hs 6403 --origin CN --destination NL --location NL \
                   --brand acme --carrier express-b --platform market-a --min-tlp amber";
    let commands = [
        "whoami".to_string(),
        "participants".into(),
        "submit a.json b.json".into(),
        "submit-batch a.json b.json".into(),
        "get --seq 3".into(),
        "get --sender market-a --id tdo-1".into(),
        "inbox --after 2 --limit 10 --kind notice --kind flag".into(),
        format!("subscribe {filters} --durable feed --from-seq 5 --max 10 --no-ack"),
        format!(
            "search {filters} --seller S-1 --listing L-1 --tracking T-1 --oldest-first \
             --limit 50 --max 100"
        ),
        "token issue --sub officer-1 --scope exchange:submit,audit:read --ttl 15m \
         --audience ipex-dev"
            .into(),
        "pseudonym --type payment --key-file community.key NL91ABNA0417164300".into(),
        "case --sender customs-nl --id seiz-2026-0001 --limit 50".into(),
        "inbox --kind listing-alert --kind seller-match".into(),
        "audit checkpoint --refresh".into(),
        "audit verify --file log.jsonl --state s.json --verifier-key a+b+c --proofs 3".into(),
        "audit verify --full --data-dir data --verifier-key a+b+c".into(),
        "audit export --out log.jsonl".into(),
        "store reindex --data-dir data".into(),
        "store migrate --from old --to new".into(),
        "health --service ipex.v1.Exchange".into(),
        "bench --concurrency 1,16 --duration 1s --requests 100 --connections 2 --warmup 0s \
         --json"
            .into(),
        "certs init".into(),
    ];
    for command in commands {
        let line = format!("ipex {global} {command}");
        if let Err(err) = Cli::try_parse_from(line.split_whitespace()) {
            panic!("`{line}` does not parse: {err}");
        }
        // `--as` instead of `--cert`/`--key`, after the subcommand (the flags are global).
        let line = format!("ipex {command} --as customs-nl");
        if let Err(err) = Cli::try_parse_from(line.split_whitespace()) {
            panic!("`{line}` does not parse: {err}");
        }
    }
}
