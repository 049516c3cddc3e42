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
    /// The directory holds a store of the first layout (one sled tree), which this version
    /// reads only to convert it.
    #[error(
        "{dir} holds an ipex store of layout version 1 (everything in one sled tree); this \
         gateway reads layout version {current}. Convert it with `ipex store migrate --from \
         {dir} --to NEW_DIR` and set data_dir to NEW_DIR"
    )]
    OldLayout {
        /// The data directory.
        dir: String,
        /// The layout this version reads.
        current: u32,
    },
    /// The directory says it holds a layout this version does not know.
    #[error(
        "{dir} holds a store of layout {found:?}; this gateway reads layout version {current}"
    )]
    UnknownLayout {
        /// The data directory.
        dir: String,
        /// What its FORMAT file says.
        found: String,
        /// The layout this version reads.
        current: u32,
    },
    /// An acknowledged record of the log is damaged.
    #[error(
        "the exchange log is damaged: segment {segment} at offset {offset}: {reason}; the \
         gateway does not start on a damaged log (set store.quarantine = true to move the \
         damaged end of the last segment aside and start without it)"
    )]
    Damaged {
        /// The segment file's number.
        segment: u32,
        /// Where the damaged record begins.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The files of the store could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file or directory, and what was done with it.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Audit failures: a store that does not match its signed history, or unreadable keys.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A leaf is missing from the log, or out of order.
    #[error("audit log damaged: leaf {0} is missing")]
    MissingLeaf(u64),
    /// A message record is missing from the log, or out of order.
    #[error("exchange log damaged: message {expected} is missing (found {found} in its place)")]
    MissingMessage {
        /// The sequence number expected next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A leaf's data does not hash to the stored leaf hash.
    #[error("audit log damaged: the data of leaf {0} does not match its stored hash")]
    LeafMismatch(u64),
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
}
