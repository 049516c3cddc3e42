//! RFC 9162 Merkle tree hashing, proofs and proof verification for the audit
//! transparency log.
//!
//! The audit log is an append-only list of entries. Publishing the root of the
//! RFC 9162 (Certificate Transparency v2) Merkle tree over those entries lets
//! anyone check two things without trusting the gateway: that an entry is in
//! the log (an *inclusion proof*) and that a later state of the log only
//! appended to an earlier one (a *consistency proof*). Using the exact RFC
//! hashing (SHA-256 with `0x00`/`0x01` domain separation) keeps the log
//! checkable by standard tooling such as the Go `tlog` packages.
//!
//! # Storage model
//!
//! The log stores the hash of every *perfect* subtree, addressed by
//! `(level, index)`: level 0 holds the leaf hashes by leaf index, and level `k`,
//! index `i` holds the root of the leaves `[i·2^k, (i+1)·2^k)`. Those hashes never
//! change once written, so they can live in any append-only key-value store
//! behind [`NodeSource`]. Nodes on the right edge of a tree whose size is not a
//! power of two are never stored: they are recomputed from the at most 64
//! perfect subtrees that make up the range, so every root and proof needs only
//! `O(log n)` reads.
//!
//! [`Frontier`] keeps the right edge of the tree in memory so that appending a
//! leaf needs no reads at all; it tells the caller which new perfect-subtree
//! hashes to store.
//!
//! Proof verification ([`verify_inclusion`], [`verify_consistency`]) is pure
//! and is what an offline verifier uses.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Returns the RFC 9162 hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// Returns the RFC 9162 hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Returns the root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Read access to the stored hashes of the perfect subtrees of a log.
///
/// `node(level, index)` returns the root of the leaves
/// `[index·2^level, (index+1)·2^level)`; level 0 is the leaf hashes.
/// Functions in this module only ask for nodes that lie entirely inside the
/// tree size they were given, so a source only has to hold the nodes of the
/// leaves appended so far.
pub trait NodeSource {
    /// The error a read can fail with.
    type Error;

    /// Returns the stored hash of the perfect subtree at `(level, index)`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}

/// An error from building a proof from stored nodes.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// An inclusion proof was asked for a leaf that is not in the tree.
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the proof was asked for.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("the first tree size {first} is larger than the second tree size {second}")]
    FirstAfterSecond {
        /// The size of the older tree.
        first: u64,
        /// The size of the newer tree.
        second: u64,
    },
    /// Reading a stored node failed.
    #[error("reading a stored tree node failed")]
    Source(#[source] E),
}

/// An error from verifying a proof; each variant says what did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index that was claimed.
        index: u64,
        /// The tree size that was claimed.
        size: u64,
    },
    /// The older tree is larger than the newer one.
    #[error("the first tree size {first} is larger than the second tree size {second}")]
    FirstAfterSecond {
        /// The size of the older tree.
        first: u64,
        /// The size of the newer tree.
        second: u64,
    },
    /// The proof does not have the number of hashes these sizes require.
    #[error("the proof has {actual} hashes but these tree sizes need exactly {expected}")]
    WrongProofLength {
        /// The number of hashes a valid proof has.
        expected: usize,
        /// The number of hashes the proof has.
        actual: usize,
    },
    /// The root recomputed from an inclusion proof is not the expected root.
    #[error("the root computed from the inclusion proof does not match the tree root")]
    RootMismatch,
    /// The older root recomputed from a consistency proof is not the expected one.
    #[error(
        "the first tree root computed from the consistency proof does not match the first root"
    )]
    FirstRootMismatch,
    /// The newer root recomputed from a consistency proof is not the expected one.
    #[error(
        "the second tree root computed from the consistency proof does not match the second root"
    )]
    SecondRootMismatch,
    /// Two trees of the same size have different roots.
    #[error("two trees of size {size} have different roots")]
    SameSizeRootsDiffer {
        /// The size of both trees.
        size: u64,
    },
    /// A tree of size 0 was claimed to have a root other than the empty root.
    #[error("a tree of size 0 must have the empty-tree root")]
    EmptyTreeRootMismatch,
}

/// The in-memory right edge of the tree: the roots of the perfect subtrees
/// that make up the current size, largest (leftmost) first.
///
/// With it, appending a leaf needs no reads and the current root is computed
/// from at most 64 hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// One hash per set bit of `size`, from the highest bit to the lowest.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// Returns the frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes,
    /// with one read per set bit of `size` (at most 64).
    pub fn from_source<S: NodeSource + ?Sized>(size: u64, src: &S) -> Result<Self, S::Error> {
        Ok(Self {
            size,
            subtrees: perfect_subtrees(src, 0, size)?,
        })
    }

    /// Returns the number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash and returns the perfect-subtree nodes to store, as
    /// `(level, index, hash)`: the leaf itself at level 0 followed by every
    /// parent that the leaf completes, lowest level first.
    ///
    /// # Panics
    ///
    /// Panics if the tree already holds `u64::MAX` leaves, which no log
    /// reaches.
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<(u8, u64, Hash)> {
        assert!(self.size < u64::MAX, "the Merkle tree is full");
        let old_size = self.size;
        let mut nodes = vec![(0u8, old_size, leaf_hash)];
        let mut hash = leaf_hash;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a complete subtree of the
        // same height just left of the new leaf: merge them, like a binary
        // carry. `subtrees` holds one hash per set bit of the size, smallest
        // last, so the subtrees to merge are exactly its last `merges` entries.
        let merges = old_size.trailing_ones() as usize;
        let keep = self.subtrees.len().saturating_sub(merges);
        for left in self.subtrees.drain(keep..).rev() {
            hash = node_hash(&left, &hash);
            level += 1;
            nodes.push((level, old_size >> level, hash));
        }
        self.subtrees.push(hash);
        self.size = old_size + 1;
        nodes
    }

    /// Returns the root of the tree; the empty-tree root for size 0.
    pub fn root(&self) -> Hash {
        fold_right(&self.subtrees)
    }
}

/// Returns the root of the tree made of the first `size` leaves, with one read
/// per set bit of `size`.
pub fn root_at<S: NodeSource + ?Sized>(size: u64, src: &S) -> Result<Hash, S::Error> {
    range_hash(src, 0, size)
}

/// Returns the RFC 9162 §2.1.3.1 inclusion proof `PATH(index, D[size])` of the
/// leaf at `index` in the tree of the first `size` leaves, leaf end first.
///
/// Needs `O(log size)` reads. The caller checks that `size` is not beyond the
/// log; a missing node is reported by the source.
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    index: u64,
    size: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, collecting the sibling of each subtree that
    // contains the leaf; the proof lists them bottom-up.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            proof.push(range_hash(src, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            proof.push(range_hash(src, start, mid).map_err(ProofError::Source)?);
            start = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Returns the RFC 9162 §2.1.4.1 consistency proof `PROOF(first, D[second])`
/// between the trees of the first `first` and the first `second` leaves.
///
/// The proof is empty when `first` is 0 or equal to `second`. Needs
/// `O(log second)` reads; the caller checks that `second` is not beyond the
/// log.
pub fn consistency_proof<S: NodeSource + ?Sized>(
    first: u64,
    second: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if first > second {
        return Err(ProofError::FirstAfterSecond { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], whole), unrolled: `whole` is the RFC's `b`,
    // true while the current subtree starts at leaf 0.
    let mut proof = Vec::new();
    let (mut start, mut end) = (0u64, second);
    let mut whole = true;
    while first != end {
        let mid = start + split_point(end - start);
        if first <= mid {
            proof.push(range_hash(src, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            proof.push(range_hash(src, start, mid).map_err(ProofError::Source)?);
            start = mid;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(src, start, end).map_err(ProofError::Source)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Verifies an RFC 9162 §2.1.3.2 inclusion proof that `leaf_hash` is the leaf
/// at `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let last = size - 1;
    let inner = bit_length(index ^ last);
    let expected = (inner + shr(index, inner).count_ones()) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }

    let (mut fn_, mut sn) = (index, last);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's guard.
            return Err(VerifyError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Verifies an RFC 9162 §2.1.4.2 consistency proof that the tree of `second`
/// leaves with root `second_root` extends the tree of `first` leaves with root
/// `first_root`.
///
/// For `first == second` the proof must be empty and the roots equal; for
/// `first == 0` the proof must be empty and `first_root` the empty-tree root.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if first > second {
        return Err(VerifyError::FirstAfterSecond { first, second });
    }
    if first == 0 || first == second {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if first == 0 {
            if *first_root != empty_root() {
                return Err(VerifyError::EmptyTreeRootMismatch);
            }
        } else if first_root != second_root {
            return Err(VerifyError::SameSizeRootsDiffer { size: first });
        }
        return Ok(());
    }

    // Expected length: the inclusion path of leaf first-1 in the second tree,
    // less the levels inside the perfect subtree ending at first, plus that
    // subtree's root unless it is the whole first tree.
    let shift = first.trailing_zeros();
    let inner = bit_length((first - 1) ^ (second - 1)) - shift;
    let border = shr(first - 1, inner + shift).count_ones();
    let seeded = first == 1 << shift;
    let expected = (inner + border) as usize + usize::from(!seeded);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2 steps 2-7; `path` is the proof with first_root
    // prepended when first is a power of two.
    let (seed, rest) = if seeded {
        (first_root, proof)
    } else {
        match proof.split_first() {
            Some((seed, rest)) => (seed, rest),
            // The length check above guarantees a non-empty proof here.
            None => {
                return Err(VerifyError::WrongProofLength {
                    expected,
                    actual: 0,
                })
            }
        }
    };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = *seed;
    let mut sr = *seed;
    for c in rest {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's guard.
            return Err(VerifyError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if fr != *first_root {
        return Err(VerifyError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(VerifyError::SecondRootMismatch);
    }
    Ok(())
}

/// A perfect-subtree node that a [`MemoryNodes`] does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tree node at level {level}, index {index} is not stored")]
pub struct MissingNode {
    /// The level of the missing node.
    pub level: u8,
    /// The index of the missing node within its level.
    pub index: u64,
}

/// An in-memory [`NodeSource`], for tests and for the offline verifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryNodes(HashMap<(u8, u64), Hash>);

impl MemoryNodes {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the store of a whole tree from its leaf hashes, in order.
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(leaves: I) -> Self {
        let mut frontier = Frontier::new();
        let mut nodes = Self::new();
        for leaf in leaves {
            nodes.extend(frontier.push(leaf));
        }
        nodes
    }

    /// Stores the hash of the perfect subtree at `(level, index)`.
    pub fn insert(&mut self, level: u8, index: u64, hash: Hash) {
        self.0.insert((level, index), hash);
    }

    /// Returns the stored hash at `(level, index)`, if any.
    pub fn get(&self, level: u8, index: u64) -> Option<&Hash> {
        self.0.get(&(level, index))
    }

    /// Returns the number of stored nodes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether no node is stored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Extend<(u8, u64, Hash)> for MemoryNodes {
    fn extend<I: IntoIterator<Item = (u8, u64, Hash)>>(&mut self, iter: I) {
        for (level, index, hash) in iter {
            self.insert(level, index, hash);
        }
    }
}

impl NodeSource for MemoryNodes {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.get(level, index)
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

/// Returns the largest power of two strictly below `n`; `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Returns the number of bits needed to write `x` (0 for 0).
fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Shifts `x` right by `bits`, giving 0 for a shift by 64 (a plain `>>`
/// would overflow).
fn shr(x: u64, bits: u32) -> u64 {
    x.checked_shr(bits).unwrap_or(0)
}

/// Reads the perfect subtrees that make up the leaves `[start, end)`, largest
/// first. When `start` is a multiple of the smallest power of two not below
/// `end - start` (true for every range in an RFC 9162 tree), these are the
/// subtrees whose right fold is `MTH(D[start:end])`.
fn perfect_subtrees<S: NodeSource + ?Sized>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut hashes = Vec::with_capacity((end - start).count_ones() as usize);
    let mut pos = start;
    while pos < end {
        let mut level = 63 - (end - pos).leading_zeros();
        if pos != 0 {
            level = level.min(pos.trailing_zeros());
        }
        // level <= 63, so the cast is lossless.
        hashes.push(src.node(level as u8, pos >> level)?);
        pos += 1 << level;
    }
    Ok(hashes)
}

/// Returns `MTH(D[start:end])` from the perfect subtrees of the range.
fn range_hash<S: NodeSource + ?Sized>(src: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    Ok(fold_right(&perfect_subtrees(src, start, end)?))
}

/// Combines adjacent subtree roots, largest first, into the root of their
/// concatenation: `node(h0, node(h1, ... node(hk-1, hk)))`. Empty input gives
/// the empty-tree root.
fn fold_right(subtrees: &[Hash]) -> Hash {
    subtrees
        .iter()
        .rev()
        .copied()
        .reduce(|right, left| node_hash(&left, &right))
        .unwrap_or_else(empty_root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hs(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    /// The leaves of the certificate-transparency / trillian RFC 6962 tests.
    fn ct_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| hex::decode(s).unwrap())
        .collect()
    }

    /// Published roots of the first 1..=8 CT test leaves.
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Naive recursive MTH / PATH / SUBPROOF written straight from RFC 9162
    /// §2.1.1, §2.1.3.1 and §2.1.4.1, over leaf hashes, with MTH memoised so
    /// the exhaustive tests stay fast in debug builds.
    struct Naive {
        leaves: Vec<Hash>,
        memo: RefCell<HashMap<(usize, usize), Hash>>,
    }

    impl Naive {
        fn new(leaves: Vec<Hash>) -> Self {
            Self {
                leaves,
                memo: RefCell::new(HashMap::new()),
            }
        }

        /// Largest power of two strictly less than n.
        fn k(n: usize) -> usize {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            k
        }

        /// MTH(D[lo:hi]).
        fn mth(&self, lo: usize, hi: usize) -> Hash {
            let n = hi - lo;
            if n == 0 {
                return Sha256::digest(b"").into();
            }
            if n == 1 {
                return self.leaves[lo];
            }
            if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
                return *h;
            }
            let k = Self::k(n);
            let h = node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi));
            self.memo.borrow_mut().insert((lo, hi), h);
            h
        }

        /// PATH(m, D[lo:hi]).
        fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n == 1 {
                return vec![];
            }
            let k = Self::k(n);
            if m < k {
                let mut p = self.path(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.path(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// SUBPROOF(m, D[lo:hi], b).
        fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b { vec![] } else { vec![self.mth(lo, hi)] };
            }
            let k = Self::k(n);
            if m <= k {
                let mut p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// PROOF(m, D[n]).
        fn proof(&self, m: usize, n: usize) -> Vec<Hash> {
            self.subproof(m, 0, n, true)
        }
    }

    /// A source that counts reads, to check the O(log n) bound.
    struct Counting<'a> {
        inner: &'a MemoryNodes,
        reads: Cell<usize>,
    }

    impl NodeSource for Counting<'_> {
        type Error = MissingNode;
        fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
            self.reads.set(self.reads.get() + 1);
            self.inner.node(level, index)
        }
    }

    fn leaf_hashes(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    fn ct_store() -> (MemoryNodes, Vec<Hash>) {
        let leaves: Vec<Hash> = ct_leaves().iter().map(|d| leaf_hash(d)).collect();
        (MemoryNodes::from_leaf_hashes(leaves.clone()), leaves)
    }

    #[test]
    fn empty_tree_and_hash_prefixes() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Frontier::new().root(), empty_root());
        assert_eq!(root_at(0, &MemoryNodes::new()).unwrap(), empty_root());
        // RFC 6962 test vector: leaf hash of the empty string.
        assert_eq!(leaf_hash(b""), h(CT_ROOTS[0]));
        let mut manual = vec![1u8];
        manual.extend_from_slice(&[7u8; 32]);
        manual.extend_from_slice(&[9u8; 32]);
        assert_eq!(
            node_hash(&[7; 32], &[9; 32]),
            <Hash>::from(Sha256::digest(&manual))
        );
    }

    #[test]
    fn known_answer_roots() {
        let (store, leaves) = ct_store();
        let naive = Naive::new(leaves.clone());
        let mut frontier = Frontier::new();
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            let size = i as u64 + 1;
            assert_eq!(
                root_at(size, &store).unwrap(),
                h(CT_ROOTS[i]),
                "size {size}"
            );
            assert_eq!(frontier.root(), h(CT_ROOTS[i]), "frontier size {size}");
            assert_eq!(naive.mth(0, i + 1), h(CT_ROOTS[i]), "naive size {size}");
        }
    }

    #[test]
    fn known_answer_inclusion_proofs() {
        let (store, leaves) = ct_store();
        // (0-based leaf index, tree size, proof) from the trillian /
        // transparency-dev RFC 6962 test data (which numbers leaves from 1).
        let vectors: Vec<(u64, u64, Vec<Hash>)> = vec![
            (0, 1, vec![]),
            (
                0,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                5,
                8,
                hs(&[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                3,
                hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            ),
            (
                1,
                5,
                hs(&[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
            (
                4,
                8,
                hs(&[
                    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                6,
                8,
                hs(&[
                    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                7,
                8,
                hs(&[
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
        ];
        for (index, size, want) in vectors {
            let got = inclusion_proof(index, size, &store).unwrap();
            assert_eq!(got, want, "inclusion({index}, {size})");
            let root = h(CT_ROOTS[size as usize - 1]);
            verify_inclusion(&leaves[index as usize], index, size, &got, &root).unwrap();
        }
    }

    #[test]
    fn known_answer_consistency_proofs() {
        let (store, _) = ct_store();
        let vectors: Vec<(u64, u64, Vec<Hash>)> = vec![
            (1, 1, vec![]),
            (
                1,
                8,
                hs(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                6,
                8,
                hs(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                5,
                hs(&[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
            (
                6,
                7,
                hs(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
        ];
        for (first, second, want) in vectors {
            let got = consistency_proof(first, second, &store).unwrap();
            assert_eq!(got, want, "consistency({first}, {second})");
            let r1 = h(CT_ROOTS[first as usize - 1]);
            let r2 = h(CT_ROOTS[second as usize - 1]);
            verify_consistency(first, second, &r1, &r2, &got).unwrap();
        }
    }

    #[test]
    fn inclusion_matches_naive_path_for_all_sizes_up_to_300() {
        const MAX: usize = 300;
        let leaves = leaf_hashes(MAX);
        let store = MemoryNodes::from_leaf_hashes(leaves.clone());
        let naive = Naive::new(leaves.clone());
        let counting = Counting {
            inner: &store,
            reads: Cell::new(0),
        };
        for n in 1..=MAX {
            let root = root_at(n as u64, &store).unwrap();
            assert_eq!(root, naive.mth(0, n), "root of size {n}");
            let log2 = 64 - (n as u64).leading_zeros() as usize;
            for (m, leaf) in leaves.iter().enumerate().take(n) {
                counting.reads.set(0);
                let proof = inclusion_proof(m as u64, n as u64, &counting).unwrap();
                assert!(
                    counting.reads.get() <= 2 * log2,
                    "inclusion({m}, {n}) took {} reads",
                    counting.reads.get()
                );
                assert_eq!(proof, naive.path(m, 0, n), "inclusion({m}, {n})");
                verify_inclusion(leaf, m as u64, n as u64, &proof, &root)
                    .unwrap_or_else(|e| panic!("verify inclusion({m}, {n}): {e}"));
            }
        }
    }

    #[test]
    fn consistency_matches_naive_subproof_up_to_80() {
        const MAX: usize = 80;
        let leaves = leaf_hashes(MAX);
        let store = MemoryNodes::from_leaf_hashes(leaves.clone());
        let naive = Naive::new(leaves);
        let counting = Counting {
            inner: &store,
            reads: Cell::new(0),
        };
        let roots: Vec<Hash> = (0..=MAX).map(|n| naive.mth(0, n)).collect();
        for n in 1..=MAX {
            let log2 = 64 - (n as u64).leading_zeros() as usize;
            for m in 1..=n {
                counting.reads.set(0);
                let proof = consistency_proof(m as u64, n as u64, &counting).unwrap();
                assert!(
                    counting.reads.get() <= 2 * log2 + 1,
                    "consistency({m}, {n}) took {} reads",
                    counting.reads.get()
                );
                assert_eq!(proof, naive.proof(m, n), "consistency({m}, {n})");
                verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof)
                    .unwrap_or_else(|e| panic!("verify consistency({m}, {n}): {e}"));
            }
            // From the empty tree: an empty proof.
            assert!(consistency_proof(0, n as u64, &store).unwrap().is_empty());
            verify_consistency(0, n as u64, &empty_root(), &roots[n], &[]).unwrap();
        }
    }

    #[test]
    fn frontier_matches_root_at_and_rebuilds() {
        const MAX: u64 = 1100;
        let mut frontier = Frontier::new();
        let mut store = MemoryNodes::new();
        for i in 0..MAX {
            let leaf = leaf_hash(&i.to_be_bytes());
            let nodes = frontier.push(leaf);
            assert_eq!(nodes[0], (0, i, leaf));
            // The leaf plus one parent per trailing one bit of the old size.
            assert_eq!(nodes.len(), 1 + i.trailing_ones() as usize);
            for &(level, index, _) in &nodes {
                assert!(store.get(level, index).is_none(), "node rewritten");
            }
            store.extend(nodes);
            let size = i + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(
                frontier.root(),
                root_at(size, &store).unwrap(),
                "size {size}"
            );
            let rebuilt = Frontier::from_source(size, &store).unwrap();
            assert_eq!(rebuilt, frontier, "rebuild at size {size}");
        }
        // Every perfect subtree is stored exactly once: 2n - popcount(n) nodes.
        assert_eq!(store.len() as u64, 2 * MAX - u64::from(MAX.count_ones()));
        // A rebuilt frontier keeps appending identically.
        let mut rebuilt = Frontier::from_source(MAX, &store).unwrap();
        let mut original = frontier.clone();
        for i in 0..50u64 {
            let leaf = leaf_hash(&i.to_le_bytes());
            assert_eq!(rebuilt.push(leaf), original.push(leaf));
        }
        assert_eq!(rebuilt.root(), original.root());
    }

    #[test]
    fn forged_interior_node_as_leaf_does_not_verify() {
        // Second-preimage attempt: present the two children of an interior
        // node as a "leaf" whose data is left ‖ right. Without domain
        // separation leaf_hash(data) would equal the interior node hash.
        let leaves = leaf_hashes(8);
        let store = MemoryNodes::from_leaf_hashes(leaves.clone());
        let root = root_at(8, &store).unwrap();
        let interior = store.node(1, 0).unwrap();
        assert_eq!(interior, node_hash(&leaves[0], &leaves[1]));

        // The level-1 node's proof as if it were leaf 0 of a 4-leaf tree.
        let upper = vec![store.node(1, 1).unwrap(), store.node(2, 1).unwrap()];
        let mut forged_data = Vec::new();
        forged_data.extend_from_slice(&leaves[0]);
        forged_data.extend_from_slice(&leaves[1]);
        let forged_leaf = leaf_hash(&forged_data);
        assert_ne!(forged_leaf, interior);
        assert!(verify_inclusion(&forged_leaf, 0, 4, &upper, &root).is_err());
        // Even the raw interior hash only "verifies" in a tree of a different
        // size (4), never against the 8-leaf tree's shape.
        assert_eq!(
            verify_inclusion(&interior, 0, 8, &upper, &root),
            Err(VerifyError::WrongProofLength {
                expected: 3,
                actual: 2
            })
        );
        // And the real leaf with its real proof does verify.
        let proof = inclusion_proof(0, 8, &store).unwrap();
        verify_inclusion(&leaves[0], 0, 8, &proof, &root).unwrap();
        assert_eq!(
            verify_inclusion(&forged_leaf, 0, 8, &proof, &root),
            Err(VerifyError::RootMismatch)
        );
    }

    #[test]
    fn tampering_fails_verification() {
        let leaves = leaf_hashes(37);
        let store = MemoryNodes::from_leaf_hashes(leaves.clone());
        let n = 37u64;
        let root = root_at(n, &store).unwrap();
        for m in 0..n {
            let proof = inclusion_proof(m, n, &store).unwrap();
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][i % 32] ^= 0x01;
                assert_eq!(
                    verify_inclusion(&leaves[m as usize], m, n, &bad, &root),
                    Err(VerifyError::RootMismatch)
                );
            }
            let mut bad_root = root;
            bad_root[31] ^= 0x80;
            assert_eq!(
                verify_inclusion(&leaves[m as usize], m, n, &proof, &bad_root),
                Err(VerifyError::RootMismatch)
            );
            // Wrong index, too short, too long.
            if n > 1 {
                let other = (m + 1) % n;
                assert!(verify_inclusion(&leaves[m as usize], other, n, &proof, &root).is_err());
            }
            if !proof.is_empty() {
                assert!(matches!(
                    verify_inclusion(&leaves[m as usize], m, n, &proof[1..], &root),
                    Err(VerifyError::WrongProofLength { .. })
                ));
            }
            let mut long = proof.clone();
            long.push(root);
            assert!(matches!(
                verify_inclusion(&leaves[m as usize], m, n, &long, &root),
                Err(VerifyError::WrongProofLength { .. })
            ));
        }

        for m in 1..n {
            let first_root = root_at(m, &store).unwrap();
            let proof = consistency_proof(m, n, &store).unwrap();
            verify_consistency(m, n, &first_root, &root, &proof).unwrap();
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][0] ^= 0x40;
                assert!(matches!(
                    verify_consistency(m, n, &first_root, &root, &bad),
                    Err(VerifyError::FirstRootMismatch | VerifyError::SecondRootMismatch)
                ));
            }
            let mut bad_first = first_root;
            bad_first[5] ^= 1;
            assert!(verify_consistency(m, n, &bad_first, &root, &proof).is_err());
            let mut bad_second = root;
            bad_second[5] ^= 1;
            assert_eq!(
                verify_consistency(m, n, &first_root, &bad_second, &proof),
                Err(VerifyError::SecondRootMismatch)
            );
            let mut long = proof.clone();
            long.push(root);
            assert!(matches!(
                verify_consistency(m, n, &first_root, &root, &long),
                Err(VerifyError::WrongProofLength { .. })
            ));
            assert!(matches!(
                verify_consistency(m, n, &first_root, &root, &proof[..proof.len() - 1]),
                Err(VerifyError::WrongProofLength { .. })
            ));
        }
    }

    #[test]
    fn argument_errors() {
        let store = MemoryNodes::from_leaf_hashes(leaf_hashes(5));
        assert!(matches!(
            inclusion_proof(5, 5, &store),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        ));
        assert!(matches!(
            inclusion_proof(0, 0, &store),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        ));
        assert!(matches!(
            consistency_proof(4, 3, &store),
            Err(ProofError::FirstAfterSecond {
                first: 4,
                second: 3
            })
        ));
        assert!(consistency_proof(3, 3, &store).unwrap().is_empty());
        // Beyond the log: the source reports the missing node.
        assert!(matches!(
            inclusion_proof(0, 6, &store),
            Err(ProofError::Source(MissingNode { .. }))
        ));
        assert!(root_at(6, &store).is_err());

        let r = root_at(5, &store).unwrap();
        let r3 = root_at(3, &store).unwrap();
        assert_eq!(
            verify_inclusion(&r, 5, 5, &[], &r),
            Err(VerifyError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            verify_consistency(4, 3, &r, &r, &[]),
            Err(VerifyError::FirstAfterSecond {
                first: 4,
                second: 3
            })
        );
        assert_eq!(verify_consistency(5, 5, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &r3, &r, &[]),
            Err(VerifyError::SameSizeRootsDiffer { size: 5 })
        );
        assert_eq!(
            verify_consistency(5, 5, &r, &r, &[r]),
            Err(VerifyError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            verify_consistency(0, 5, &r, &r, &[]),
            Err(VerifyError::EmptyTreeRootMismatch)
        );
        assert_eq!(
            verify_consistency(3, 5, &r3, &r, &[]),
            Err(VerifyError::WrongProofLength {
                expected: 4,
                actual: 0
            })
        );
        // Messages are sentences.
        let msg = VerifyError::WrongProofLength {
            expected: 2,
            actual: 0,
        }
        .to_string();
        assert_eq!(
            msg,
            "the proof has 0 hashes but these tree sizes need exactly 2"
        );
        let err: ProofError<MissingNode> = ProofError::Source(MissingNode { level: 1, index: 2 });
        assert_eq!(err.to_string(), "reading a stored tree node failed");
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("tree node at level 1, index 2 is not stored".to_string())
        );
    }

    #[test]
    fn large_tree_sizes_stay_logarithmic() {
        // A tree whose leaves are all equal has one hash per level, so every
        // stored node of even a 2^64-leaf tree can be synthesised: this checks
        // the read bound and the arithmetic near the top of the u64 range.
        struct Uniform(Vec<Hash>);
        impl NodeSource for Uniform {
            type Error = std::convert::Infallible;
            fn node(&self, level: u8, _index: u64) -> Result<Hash, Self::Error> {
                Ok(self.0[usize::from(level)])
            }
        }
        let mut levels = vec![leaf_hash(b"same")];
        for l in 0..63 {
            levels.push(node_hash(&levels[l], &levels[l]));
        }
        let uniform = Uniform(levels);
        for &size in &[
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) + 12345,
            1_000_000_007,
        ] {
            let root = root_at(size, &uniform).unwrap();
            for &index in &[0, 1, size / 2, size - 2, size - 1] {
                let proof = inclusion_proof(index, size, &uniform).unwrap();
                assert!(proof.len() <= 64);
                let leaf = uniform.node(0, index).unwrap();
                verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            }
            for &first in &[1, 2, 3, size / 3, size - 1] {
                let first_root = root_at(first, &uniform).unwrap();
                let proof = consistency_proof(first, size, &uniform).unwrap();
                verify_consistency(first, size, &first_root, &root, &proof).unwrap();
            }
        }
    }
}
