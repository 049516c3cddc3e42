//! The exchange log as participants see it: checkpoints, inclusion and consistency proofs,
//! and leaves (every hash; the data only of leaves the caller is party to).

use super::error::Error;
use super::events::{self, Refusal};
use super::Gateway;
use crate::auth::identity::Caller;
use crate::domain::Violations;
use crate::pb;
use crate::pb::limits::MAX_LEAVES;

/// The exchange log, as participants see it.
impl Gateway {
    /// The latest checkpoint, or a fresh one covering every leaf so far, with the
    /// cosignatures peers gave it; or, `witnessed`, the newest checkpoint peers cosigned.
    pub async fn checkpoint(
        &self,
        refresh: bool,
        witnessed: bool,
    ) -> Result<pb::GetCheckpointResponse, Error> {
        self.store.settled().await?;
        let cosigned = self.cosigned.note();
        let (checkpoint, cosignatures) = match (cosigned, self.store.latest_checkpoint()) {
            (Some(cosigned), _) if witnessed => cosigned,
            (Some(cosigned), Some(latest))
                if !refresh && (cosigned.0.size, cosigned.0.root) == (latest.size, latest.root) =>
            {
                cosigned
            }
            (_, Some(latest)) if !refresh => ((*latest).clone(), 0),
            _ => (self.store.checkpoint_now().await?, 0),
        };
        Ok(pb::GetCheckpointResponse {
            checkpoint: checkpoint.note,
            tree_size: checkpoint.size,
            root_hash: checkpoint.root.to_vec(),
            verifier_key: self.store.verifier_key().to_string(),
            cosignatures: cosignatures as u32,
        })
    }

    /// The size a proof request means: `requested`, or the latest checkpoint's when 0; it must
    /// lie within the durable log.
    fn proof_size(&self, requested: u64, field: &str) -> Result<u64, Error> {
        let size = match requested {
            0 => self.store.latest_checkpoint().map_or(0, |c| c.size),
            n => n,
        };
        let durable = self.store.tree_size();
        if size > durable {
            return Err(Error::invalid(
                field,
                format!("{size} is larger than the log ({durable} leaves)"),
            ));
        }
        Ok(size)
    }

    /// An inclusion proof.
    pub async fn inclusion_proof(
        &self,
        request: pb::GetInclusionProofRequest,
    ) -> Result<pb::GetInclusionProofResponse, Error> {
        self.store.settled().await?;
        let size = self.proof_size(request.tree_size, "tree_size")?;
        if request.leaf_index >= size {
            return Err(Error::invalid(
                "leaf_index",
                format!("{} is not below the tree size {size}", request.leaf_index),
            ));
        }
        let proof = self.store.inclusion_proof(request.leaf_index, size)?;
        let leaf_hash = self.store.leaf_hash(request.leaf_index)?;
        Ok(pb::GetInclusionProofResponse {
            leaf_index: request.leaf_index,
            tree_size: size,
            leaf_hash: leaf_hash.to_vec(),
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// A consistency proof.
    pub async fn consistency_proof(
        &self,
        request: pb::GetConsistencyProofRequest,
    ) -> Result<pb::GetConsistencyProofResponse, Error> {
        self.store.settled().await?;
        let second = self.proof_size(request.second, "second")?;
        if request.first > second {
            return Err(Error::invalid(
                "first",
                format!("{} is larger than second ({second})", request.first),
            ));
        }
        let proof = self.store.consistency_proof(request.first, second)?;
        Ok(pb::GetConsistencyProofResponse {
            first: request.first,
            second,
            hashes: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// Leaves `[start, end)`: every hash, and the data of the leaves the caller is party to.
    pub async fn leaves(
        &self,
        caller: &Caller,
        request: pb::GetLeavesRequest,
    ) -> Result<pb::GetLeavesResponse, Error> {
        self.store.settled().await?;
        let tree_size = self.store.tree_size();
        let mut v = Violations::default();
        if request.end <= request.start {
            v.add("end", "must be larger than start");
        } else if request.end - request.start > MAX_LEAVES {
            v.add("end", format!("at most {MAX_LEAVES} leaves per call"));
        }
        if request.start >= tree_size && request.end > request.start {
            v.add(
                "start",
                format!("{} is not below the tree size {tree_size}", request.start),
            );
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        let leaves = self
            .store
            .leaves(request.start, request.end)?
            .into_iter()
            .map(|(index, hash, data)| pb::LogLeaf {
                index,
                leaf_hash: hash.to_vec(),
                data: if crate::log::leaf::is_party(&data, caller.id()) {
                    data
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(pb::GetLeavesResponse { leaves, tree_size })
    }

    /// A tile of the tree's hashes, by its C2SP tlog-tiles path.
    pub async fn tile(&self, request: pb::GetTileRequest) -> Result<pb::GetTileResponse, Error> {
        let (level, index, width) =
            crate::log::tiles::parse_path(&request.path).map_err(|e| Error::invalid("path", e))?;
        self.store.settled().await?;
        let tree_size = self.store.tree_size();
        let hashes = self.store.tile(level, index, width)?.ok_or_else(|| {
            Error::NotFound(format!(
                "tile {} is not in the tree of {tree_size} leaves",
                request.path
            ))
        })?;
        Ok(pb::GetTileResponse {
            tile: crate::log::tiles::encode(&hashes),
            tree_size,
        })
    }

    /// Records a refused call in the audit log, without waiting for the write.
    pub fn record_refusal(&self, refusal: Refusal) {
        if !self.store.record_later(vec![events::refused(refusal)]) {
            tracing::warn!("audit queue full or closed: a refusal was not recorded");
        }
    }
}
