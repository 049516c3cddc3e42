//! `ipex audit verify` and `ipex audit export`: a participant's checks of the exchange log,
//! online against the gateway or offline from an export file.

use super::error::CliError;
use crate::log::cosign::CosignatureVerifier;
use crate::log::merkle::{self, Hash};
use crate::log::verify::{
    hashes, open_checkpoint, ExportHeader, ExportLeaf, LogChecker, Report, State, VerifyError,
    EXPORT_FORMAT,
};
use crate::pb;
use crate::pb::limits::MAX_LEAVES;
use base64::Engine;
use std::io::{BufRead, Write};
use std::path::Path;

type AuditClient = pb::audit_client::AuditClient<super::client::Transport>;

/// Picks the verifier key: given, remembered, or presented (trusted on first use).
fn choose_key(given: Option<&str>, state: Option<&State>, presented: &str) -> String {
    if let Some(key) = given {
        return key.to_string();
    }
    if let Some(state) = state {
        return state.verifier_key.clone();
    }
    eprintln!(
        "note: trusting the presented verifier key {presented} on first use; pin it with --verifier-key"
    );
    presented.to_string()
}

/// Reports progress on long runs.
fn progress(done: u64, total: u64) {
    if total >= 100_000 && (done % 100_000 == 0 || done == total) {
        eprintln!("verified {done}/{total} leaves");
    }
}

/// The witnesses whose cosignatures a checkpoint must carry, and how many of them.
#[derive(Debug, Default)]
pub struct Witnesses {
    keys: Vec<CosignatureVerifier>,
    quorum: usize,
}

impl Witnesses {
    /// Reads `--witness` values (a verifier key, or a file holding one) and `--quorum`
    /// (default: all of them).
    pub fn parse(given: &[String], quorum: Option<usize>) -> Result<Witnesses, CliError> {
        let mut keys = Vec::new();
        for value in given {
            let text = if Path::new(value).is_file() {
                std::fs::read_to_string(value)
                    .map_err(|e| CliError::Input(format!("--witness {value}: {e}")))?
            } else {
                value.clone()
            };
            keys.push(
                CosignatureVerifier::from_verifier_key(text.trim())
                    .map_err(|e| CliError::Input(format!("--witness {value}: {e}")))?,
            );
        }
        let quorum = quorum.unwrap_or(keys.len());
        if quorum > keys.len() || (quorum == 0 && !keys.is_empty()) {
            return Err(CliError::Input(format!(
                "--quorum {quorum}: must be from 1 to the number of --witness keys ({})",
                keys.len()
            )));
        }
        Ok(Witnesses { keys, quorum })
    }

    /// Checks that `note` carries a valid cosignature of at least `quorum` witnesses; returns
    /// the names of those that cosigned.
    fn check(&self, note: &str, size: u64) -> Result<Vec<String>, CliError> {
        let mut cosigned = Vec::new();
        let mut missing = Vec::new();
        for key in &self.keys {
            match key.verify(note) {
                Ok(_) => cosigned.push(key.name().to_string()),
                Err(e) => missing.push(format!("{}: {e}", key.name())),
            }
        }
        if cosigned.len() < self.quorum {
            return Err(CliError::Input(format!(
                "the checkpoint of size {size} carries {} valid cosignature(s) of the {} witnesses given, fewer than the quorum of {}; {}",
                cosigned.len(),
                self.keys.len(),
                self.quorum,
                missing.join("; ")
            )));
        }
        Ok(cosigned)
    }
}

/// Verifies the live log of the gateway; with `witnesses`, the newest checkpoint its peers
/// cosigned, which must carry a quorum of their cosignatures.
pub async fn verify_online(
    audit: &mut AuditClient,
    state_path: &Path,
    key: Option<&str>,
    proofs: usize,
    witnesses: &Witnesses,
) -> Result<serde_json::Value, CliError> {
    let state = State::load(state_path)?;
    let witnessed = !witnesses.keys.is_empty();
    let cp = audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: false,
            witnessed,
        })
        .await?
        .into_inner();
    let key = choose_key(key, state.as_ref(), &cp.verifier_key);
    let checkpoint = open_checkpoint(&cp.checkpoint, &key)?;
    let cosigned_by = if witnessed {
        Some(witnesses.check(&cp.checkpoint, checkpoint.size)?)
    } else {
        None
    };
    let size = checkpoint.size;
    let root = checkpoint.root;
    let mut checker = LogChecker::new(checkpoint, state.as_ref())?;
    let mut own: Vec<(u64, Hash)> = Vec::new();
    let mut start = 0;
    while start < size {
        let leaves = page(audit, start, size).await?;
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            let hash = one_hash(&leaf.leaf_hash)?;
            checker.push(leaf.index, hash, Some(&leaf.data))?;
            if !leaf.data.is_empty() {
                own.push((leaf.index, hash));
                if own.len() > proofs.max(1) * 4 {
                    own.drain(..own.len() - proofs);
                }
            }
        }
        start = checker.size();
        progress(start, size);
    }
    let report = checker.finish()?;

    // The gateway's own consistency proof from the checkpoint seen last time must hold too.
    let mut consistency_from = None;
    if let Some(previous) = state.as_ref().filter(|s| s.tree_size > 0) {
        let proof = audit
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                first: previous.tree_size,
                second: size,
            })
            .await?
            .into_inner();
        let mut old_root = [0u8; 32];
        hex::decode_to_slice(&previous.root, &mut old_root)
            .map_err(|e| VerifyError::State(format!("root: {e}")))?;
        merkle::verify_consistency(
            previous.tree_size,
            size,
            &old_root,
            &root,
            &hashes(&proof.hashes)?,
        )
        .map_err(|e| VerifyError::Consistency {
            first: previous.tree_size,
            second: size,
            reason: e.to_string(),
        })?;
        consistency_from = Some(previous.tree_size);
    }

    // Inclusion proofs of the caller's own most recent leaves.
    let own = &own[own.len().saturating_sub(proofs)..];
    for (index, hash) in own {
        let proof = audit
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf_index: *index,
                tree_size: size,
            })
            .await?
            .into_inner();
        merkle::verify_inclusion(hash, *index, size, &hashes(&proof.hashes)?, &root).map_err(
            |e| VerifyError::Inclusion {
                index: *index,
                size,
                reason: e.to_string(),
            },
        )?;
    }
    report.state(&key).save(state_path)?;
    Ok(verified(
        &report,
        serde_json::json!({
        "inclusionProofsChecked": own.len(),
        "consistentWithSize": consistency_from.map(|s| s.to_string()),
        "cosignedBy": cosigned_by,
        "state": state_path.display().to_string(),
        }),
    ))
}

/// What a successful verification prints: the report's figures, then `extra`.
fn verified(report: &Report, extra: serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::json!({
        "verified": true,
        "origin": report.origin,
        "treeSize": report.tree_size.to_string(),
        "root": report.root,
        "ownLeaves": report.leaves_with_data.to_string(),
    });
    if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// The leaves from `start` on, as many as one call gives, of a tree of `size`.
async fn page(
    audit: &mut AuditClient,
    start: u64,
    size: u64,
) -> Result<Vec<pb::LogLeaf>, CliError> {
    let end = (start + MAX_LEAVES).min(size);
    let request = pb::GetLeavesRequest { start, end };
    Ok(audit.get_leaves(request).await?.into_inner().leaves)
}

/// Writes the log to `path`.
pub async fn export(audit: &mut AuditClient, path: &Path) -> Result<serde_json::Value, CliError> {
    let cp = audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: true,
            witnessed: false,
        })
        .await?
        .into_inner();
    let file = std::fs::File::create(path)
        .map_err(|e| CliError::Input(format!("cannot create {}: {e}", path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let write_err =
        |e: std::io::Error| CliError::Input(format!("cannot write {}: {e}", path.display()));
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        checkpoint: cp.checkpoint.clone(),
        verifier_key: cp.verifier_key.clone(),
    };
    writeln!(
        out,
        "{}",
        serde_json::to_string(&header).expect("header serializes")
    )
    .map_err(write_err)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut start = 0;
    while start < cp.tree_size {
        let leaves = page(audit, start, cp.tree_size).await?;
        if leaves.is_empty() {
            break;
        }
        for leaf in &leaves {
            let line = ExportLeaf {
                index: leaf.index,
                leaf_hash: hex::encode(&leaf.leaf_hash),
                data: if leaf.data.is_empty() {
                    String::new()
                } else {
                    b64.encode(&leaf.data)
                },
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string(&line).expect("leaf serializes")
            )
            .map_err(write_err)?;
        }
        start = leaves.last().map_or(cp.tree_size, |l| l.index + 1);
    }
    out.flush().map_err(write_err)?;
    Ok(serde_json::json!({
        "file": path.display().to_string(),
        "treeSize": cp.tree_size.to_string(),
    }))
}

/// Verifies an export file offline.
pub fn verify_file(
    path: &Path,
    state_path: &Path,
    key: Option<&str>,
) -> Result<serde_json::Value, CliError> {
    let state = State::load(state_path)?;
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::Input(format!("cannot open {}: {e}", path.display())))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let bad = |line: usize, reason: String| {
        VerifyError::Input(format!("{}:{line}: {reason}", path.display()))
    };
    let header: ExportHeader = match lines.next() {
        Some(Ok(text)) => serde_json::from_str(&text).map_err(|e| bad(1, e.to_string()))?,
        Some(Err(e)) => return Err(bad(1, e.to_string()).into()),
        None => return Err(bad(1, "empty file".into()).into()),
    };
    if header.format != EXPORT_FORMAT {
        return Err(bad(
            1,
            format!("format {:?}, expected {EXPORT_FORMAT:?}", header.format),
        )
        .into());
    }
    let key = choose_key(key, state.as_ref(), &header.verifier_key);
    let checkpoint = open_checkpoint(&header.checkpoint, &key)?;
    let size = checkpoint.size;
    let mut checker = LogChecker::new(checkpoint, state.as_ref())?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for (n, line) in lines.enumerate() {
        let number = n + 2;
        let text = line.map_err(|e| bad(number, e.to_string()))?;
        let leaf: ExportLeaf =
            serde_json::from_str(&text).map_err(|e| bad(number, e.to_string()))?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&leaf.leaf_hash, &mut hash)
            .map_err(|e| bad(number, format!("leaf_hash: {e}")))?;
        let data = b64
            .decode(&leaf.data)
            .map_err(|e| bad(number, format!("data: {e}")))?;
        checker.push(leaf.index, hash, Some(&data))?;
        progress(checker.size(), size);
    }
    let report = checker.finish()?;
    report.state(&key).save(state_path)?;
    Ok(verified(
        &report,
        serde_json::json!({ "state": state_path.display().to_string() }),
    ))
}

fn one_hash(bytes: &[u8]) -> Result<Hash, VerifyError> {
    bytes
        .try_into()
        .map_err(|_| VerifyError::Input(format!("a leaf hash of {} bytes", bytes.len())))
}
