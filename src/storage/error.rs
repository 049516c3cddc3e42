//! What storage can fail with: the engine, a damaged record, a refused commit, and a log
//! that does not match its signed history.

/// Storage failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A stored value does not decode: the store is damaged.
    #[error("stored record {key} is damaged: {reason}")]
    Corrupt {
        /// Which key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An earlier flush failed; the store refuses writes until the gateway restarts.
    #[error("the store failed to flush earlier and refuses writes until restart")]
    Failed,
    /// The gateway is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// Why a commit was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The (sender, id) pair is already stored with different content.
    #[error("message {id:?} of {sender} is already stored with different content (seq {seq})")]
    Conflict {
        /// Position of the message in its job.
        index: usize,
        /// Sender.
        sender: String,
        /// Id.
        id: String,
        /// Sequence number of the stored message.
        seq: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log does not match its signed history: the gateway must not start.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Audit failures: a store that does not match its signed history, or unreadable keys.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A leaf is missing from the store.
    #[error("audit log damaged: leaf {0} is missing")]
    MissingLeaf(u64),
    /// A leaf's data does not hash to the stored leaf hash.
    #[error("audit log damaged: the data of leaf {0} does not match its stored hash")]
    LeafMismatch(u64),
    /// A stored tree node differs from the one recomputed from the leaves.
    #[error(
        "audit log damaged: tree node (level {level}, index {index}) does not match the leaves"
    )]
    NodeMismatch {
        /// Level of the node.
        level: u8,
        /// Index of the node.
        index: u64,
    },
    /// The root recomputed from the leaves differs from the signed checkpoint.
    #[error(
        "audit log does not match its last signed checkpoint: at tree size {size} the leaves \
         give root {computed}, the checkpoint says {signed}"
    )]
    CheckpointMismatch {
        /// Tree size of the checkpoint.
        size: u64,
        /// Root recomputed from the leaves, hex.
        computed: String,
        /// Root of the checkpoint, hex.
        signed: String,
    },
    /// The log holds fewer leaves than its last checkpoint.
    #[error("audit log truncated: {leaves} leaves, but checkpoint {checkpoint} was signed")]
    Truncated {
        /// Leaves found.
        leaves: u64,
        /// Size of the last checkpoint.
        checkpoint: u64,
    },
    /// The stored checkpoint does not verify with the gateway's key.
    #[error("stored checkpoint of size {size} does not verify with the gateway's key: {reason}")]
    CheckpointSignature {
        /// Its size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The signing key could not be read or created.
    #[error("audit signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
}
