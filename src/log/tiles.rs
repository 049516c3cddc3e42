//! The tree's hashes as C2SP tlog-tiles: a tile at level `L`, index `N` holds up to 256
//! consecutive hashes of tree level `8·L`, from hash `256·N` on. Level 0 tiles are the leaf
//! hashes; a level-1 entry is the root of a full level-0 tile, and so on. Only full tiles and
//! the partial tile at the right edge of each level exist; every other node of the tree is
//! recomputed from at most one tile ([`TileNodes`]), so no node is ever stored on its own.
//!
//! [`Edge`] keeps the right-edge tiles in memory while leaves are appended and says which
//! tiles a batch of leaves changed; [`path`] and [`parse_path`] speak the spec's tile paths
//! (`tile/<L>/<N>[.p/<W>]`, `N` in three-digit elements, all but the last prefixed `x`).

use super::merkle::{node_hash, Hash, NodeSource};

/// Tree levels one tile spans.
pub const HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const WIDTH: u64 = 1 << HEIGHT;

/// Read access to stored tiles.
pub trait TileSource {
    /// The error a read can fail with.
    type Error;

    /// The hashes of tile `(level, index)` as stored: a full tile, or the right edge's
    /// partial tile, possibly of a later (wider) version than a caller needs.
    fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, Self::Error>;
}

impl<S: TileSource + ?Sized> TileSource for &S {
    type Error = S::Error;

    fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, S::Error> {
        (**self).tile(level, index)
    }
}

/// Why a node could not be read from the tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tile {level}/{index} holds {have} hashes; hash {want} of it is needed")]
pub struct TooNarrow {
    /// The tile's level.
    pub level: u8,
    /// The tile's index.
    pub index: u64,
    /// Hashes it holds.
    pub have: usize,
    /// The hash needed (0-based within the tile).
    pub want: usize,
}

/// The root of a perfect subtree whose leaves (or lower nodes) are `hashes`; its length is
/// a power of two.
fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// Every perfect-subtree hash inside one tile: level `k` holds the roots of the aligned runs
/// of `2^k` entries, as far as the tile's entries reach. Computed once per tile (at most 255
/// hashes), it answers every node the tile spans.
#[derive(Clone, Debug)]
pub struct TileTree {
    levels: Vec<Vec<Hash>>,
}

impl TileTree {
    /// The tree over a tile's entries.
    pub fn new(entries: Vec<Hash>) -> TileTree {
        let mut levels = vec![entries];
        while levels.len() <= usize::from(HEIGHT) {
            let next: Vec<Hash> = levels[levels.len() - 1]
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        TileTree { levels }
    }

    /// Entries of the tile.
    pub fn width(&self) -> usize {
        self.levels[0].len()
    }

    /// The root of aligned run `k` of `2^within` entries, if the tile holds all of it.
    pub fn node(&self, within: u8, k: usize) -> Option<Hash> {
        self.levels.get(usize::from(within))?.get(k).copied()
    }
}

/// Which tile holds node `(level, index)`, and where in it: `(tile level, tile index, level
/// within the tile, run within the tile, entries of the tile it needs)`.
pub fn locate(level: u8, index: u64) -> (u8, u64, u8, usize, usize) {
    let tile_level = level / HEIGHT;
    let within = level % HEIGHT;
    let first = index << within;
    let offset = (first % WIDTH) as usize;
    (
        tile_level,
        first / WIDTH,
        within,
        offset >> within,
        offset + (1usize << within),
    )
}

/// The perfect-subtree nodes of the tree, read from tiles: node `(level, index)` is the
/// root of `2^(level mod 8)` consecutive entries of one tile of level `level / 8`.
pub struct TileNodes<S>(pub S);

impl<S: TileSource> NodeSource for TileNodes<S>
where
    S::Error: From<TooNarrow>,
{
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, S::Error> {
        let (tile_level, tile_index, within, k, needed) = locate(level, index);
        let tile = self.0.tile(tile_level, tile_index)?;
        let have = tile.len();
        let entries = tile
            .get(needed - (1usize << within)..needed)
            .ok_or(TooNarrow {
                level: tile_level,
                index: tile_index,
                have,
                want: needed - 1,
            })?;
        debug_assert_eq!(k, (needed - entries.len()) >> within);
        Ok(perfect_root(entries))
    }
}

/// The right-edge tiles of a growing tree: one partial tile per level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    /// Leaves in the tree.
    size: u64,
    /// Per level, the entries of its rightmost tile that is not full (may be empty).
    partial: Vec<Vec<Hash>>,
}

/// A tile a batch of appends changed: `(level, index, hashes)`.
pub type ChangedTile = (u8, u64, Vec<Hash>);

impl Edge {
    /// The edge of the empty tree.
    pub fn new() -> Edge {
        Edge::default()
    }

    /// The edge of a tree of `size` leaves, read from stored tiles (one read per level).
    pub fn from_source<S: TileSource>(size: u64, src: &S) -> Result<Edge, S::Error>
    where
        S::Error: From<TooNarrow>,
    {
        let mut partial = Vec::new();
        let mut level = 0u8;
        loop {
            let entries_at_level = size >> (u32::from(level) * u32::from(HEIGHT));
            if entries_at_level == 0 {
                break;
            }
            let width = (entries_at_level % WIDTH) as usize;
            let mut tile = if width == 0 {
                Vec::new()
            } else {
                let index = entries_at_level / WIDTH;
                let stored = src.tile(level, index)?;
                if stored.len() < width {
                    return Err(TooNarrow {
                        level,
                        index,
                        have: stored.len(),
                        want: width - 1,
                    }
                    .into());
                }
                stored
            };
            tile.truncate(width);
            partial.push(tile);
            level += 1;
        }
        Ok(Edge { size, partial })
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends leaf hashes; returns every tile they changed, each once, in its new state:
    /// tiles they completed and the partial tiles they grew.
    pub fn append(&mut self, leaf_hashes: &[Hash]) -> Vec<ChangedTile> {
        let mut changed: Vec<ChangedTile> = Vec::new();
        let mut touched: Vec<(u8, u64)> = Vec::new();
        for &leaf in leaf_hashes {
            let mut hash = leaf;
            let mut level = 0u8;
            loop {
                if self.partial.len() <= usize::from(level) {
                    self.partial.push(Vec::new());
                }
                let position = self.size >> (u32::from(level) * u32::from(HEIGHT));
                let index = position / WIDTH;
                let tile = &mut self.partial[usize::from(level)];
                tile.push(hash);
                if !touched.contains(&(level, index)) {
                    touched.push((level, index));
                }
                if tile.len() as u64 == WIDTH {
                    let full = std::mem::take(tile);
                    hash = perfect_root(&full);
                    changed.push((level, index, full));
                    touched.retain(|t| *t != (level, index));
                    // A full tile's root is the next entry one level up.
                    level += 1;
                    continue;
                }
                break;
            }
            self.size += 1;
        }
        for (level, index) in touched {
            let tile = &self.partial[usize::from(level)];
            if !tile.is_empty() {
                changed.push((level, index, tile.clone()));
            }
        }
        changed
    }
}

/// The tile path of tile `(level, index)` of `width` hashes (256: full).
pub fn path(level: u8, index: u64, width: u64) -> String {
    let mut elements = Vec::new();
    let mut n = index;
    loop {
        elements.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = elements.len() - 1;
    let n_path: Vec<String> = elements
        .iter()
        .rev()
        .enumerate()
        .map(|(i, e)| {
            if i == last {
                format!("{e:03}")
            } else {
                format!("x{e:03}")
            }
        })
        .collect();
    let mut out = format!("tile/{level}/{}", n_path.join("/"));
    if width < WIDTH {
        out.push_str(&format!(".p/{width}"));
    }
    out
}

/// Parses a tile path: `(level, index, width)`.
pub fn parse_path(text: &str) -> Result<(u8, u64, u64), String> {
    let bad = |why: &str| format!("{text:?} is not a tile path (tile/<L>/<N>[.p/<W>]): {why}");
    let rest = text
        .strip_prefix("tile/")
        .ok_or_else(|| bad("no tile/ prefix"))?;
    let (level, rest) = rest.split_once('/').ok_or_else(|| bad("no index"))?;
    let level: u8 = level
        .parse()
        .ok()
        .filter(|l| *l <= 63)
        .ok_or_else(|| bad("the level is not 0 to 63"))?;
    let (n_path, width) = match rest.split_once(".p/") {
        Some((n, w)) => {
            let w: u64 = w
                .parse()
                .ok()
                .filter(|w| (1..WIDTH).contains(w) && !w.to_string().starts_with('0'))
                .ok_or_else(|| bad("a partial width is 1 to 255"))?;
            (n, w)
        }
        None => (rest, WIDTH),
    };
    let elements: Vec<&str> = n_path.split('/').collect();
    let mut index: u64 = 0;
    for (i, element) in elements.iter().enumerate() {
        let digits = if i + 1 < elements.len() {
            element
                .strip_prefix('x')
                .ok_or_else(|| bad("inner index elements start with x"))?
        } else {
            element
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("index elements are three digits"));
        }
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(digits.parse::<u64>().expect("three digits")))
            .ok_or_else(|| bad("the index is too large"))?;
    }
    if elements.len() > 1 && elements[0] == "x000" {
        return Err(bad("the index has a leading zero element"));
    }
    Ok((level, index, width))
}

/// The bytes of a tile as the spec serves it: its hashes, concatenated.
pub fn encode(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// The hashes of a tile's bytes.
pub fn decode(bytes: &[u8]) -> Option<Vec<Hash>> {
    (bytes.len() % 32 == 0).then(|| {
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::merkle::{self, leaf_hash, MemoryNodes};
    use std::collections::HashMap;

    /// Tiles in memory, as the store would hold them (latest version of each).
    #[derive(Default)]
    struct Memory(HashMap<(u8, u64), Vec<Hash>>);

    #[derive(Debug)]
    struct Missing;
    impl From<TooNarrow> for Missing {
        fn from(_: TooNarrow) -> Self {
            Missing
        }
    }

    impl TileSource for Memory {
        type Error = Missing;
        fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, Missing> {
            self.0.get(&(level, index)).cloned().ok_or(Missing)
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn nodes_from_tiles_equal_nodes_from_every_subtree() {
        let all = leaves(70_000);
        let mut edge = Edge::new();
        let mut tiles = Memory::default();
        // In uneven batches, as group commits append them.
        let mut at = 0;
        for (i, batch) in [1usize, 255, 1, 300, 65_000, 4443].iter().enumerate() {
            for (level, index, hashes) in edge.append(&all[at..at + batch]) {
                tiles.0.insert((level, index), hashes);
            }
            at += batch;
            assert_eq!(edge.size(), at as u64, "batch {i}");
        }
        let reference = MemoryNodes::from_leaf_hashes(all.iter().copied());
        let nodes = TileNodes(&tiles);
        for size in [1u64, 2, 255, 256, 257, 65_535, 65_536, 65_537, 70_000] {
            assert_eq!(
                merkle::root_at(size, &nodes).unwrap(),
                merkle::root_at(size, &reference).unwrap(),
                "root at {size}"
            );
        }
        let proof = merkle::inclusion_proof(65_540, 70_000, &nodes).unwrap();
        let root = merkle::root_at(70_000, &nodes).unwrap();
        merkle::verify_inclusion(&all[65_540], 65_540, 70_000, &proof, &root).unwrap();
        // Level 1 holds the roots of full level-0 tiles; level 2 the root of the first 65536.
        assert_eq!(tiles.0[&(1, 0)].len(), 256);
        assert_eq!(tiles.0[&(2, 0)].len(), 1);
        // The edge read back from the tiles continues exactly where the writer stood.
        for size in [0u64, 1, 256, 65_536, 66_000, 70_000] {
            let mut again = Edge::from_source(size, &tiles).unwrap();
            let mut reference = Edge::new();
            reference.append(&all[..size as usize]);
            assert_eq!(again, reference, "edge at {size}");
            assert_eq!(again.append(&[]), vec![]);
        }
    }

    #[test]
    fn paths_follow_the_spec() {
        assert_eq!(path(0, 0, 256), "tile/0/000");
        assert_eq!(path(3, 1_234_067, 8), "tile/3/x001/x234/067.p/8");
        assert_eq!(path(1, 999, 256), "tile/1/999");
        assert_eq!(path(0, 1000, 1), "tile/0/x001/000.p/1");
        for (l, n, w) in [(0u8, 0u64, 256u64), (3, 1_234_067, 8), (2, 1000, 255)] {
            assert_eq!(parse_path(&path(l, n, w)), Ok((l, n, w)));
        }
        for bad in [
            "tile/0/1",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/64/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/x000/001",
            "tiles/0/000",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }
}
