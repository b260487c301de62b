//! The Merkle tree over a sale's sealed entrant list, so the published list can be checked against
//! one hash in the sale's status, and one person's presence against that hash.
//!
//! Construction: the Merkle Tree Hash of RFC 6962 / RFC 9162 (Certificate Transparency) over the
//! entrant ids (SHA-256 of each user id) **sorted ascending**: leaf = SHA-256(0x00 ‖ id), node =
//! SHA-256(0x01 ‖ left ‖ right), the left subtree holding the largest power of two below the
//! count; an empty list hashes to SHA-256(""). Inclusion proofs are RFC 9162 audit paths
//! (§2.1.3), checked by [`verify_inclusion`].

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

fn leaf_hash(id: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(id);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The tree over a sorted list of ids, level by level (a last node without a sibling moves up
/// as it is, which gives exactly RFC 6962's tree).
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The tree over `ids`, sorted first.
    pub fn new(ids: &[Hash]) -> Self {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let mut levels = vec![sorted.iter().map(leaf_hash).collect::<Vec<_>>()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up = below
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [single] => *single,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(up);
        }
        Self { levels }
    }

    /// The root: what the sale's status publishes as `entrantsRoot`.
    pub fn root(&self) -> Hash {
        match self.levels.last().and_then(|l| l.first()) {
            Some(root) => *root,
            None => Sha256::digest(b"").into(),
        }
    }

    /// The audit path of the leaf at `index` (its place in the sorted list), leaf level first.
    pub fn proof(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.levels.first().map_or(0, Vec::len) {
            return None;
        }
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(*sibling);
            }
            i /= 2;
        }
        Some(path)
    }
}

/// The root over `ids` (sorted first).
pub fn root(ids: &[Hash]) -> Hash {
    MerkleTree::new(ids).root()
}

/// RFC 9162 §2.1.3.2: is `id` the leaf at `index` of a tree of `size` leaves whose root is `root`?
pub fn verify_inclusion(id: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf_hash(id);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's recursive definition, to check the level-by-level tree against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn ids(n: u8) -> Vec<Hash> {
        (0..n).map(|i| Sha256::digest([i]).into()).collect()
    }

    #[test]
    fn the_root_is_rfc_6962s_tree_hash_over_the_sorted_ids_and_every_proof_checks() {
        for n in 0..40u8 {
            let mut list = ids(n);
            let tree = MerkleTree::new(&list);
            list.sort_unstable();
            assert_eq!(tree.root(), mth(&list), "{n} leaves");
            for (i, id) in list.iter().enumerate() {
                let path = tree.proof(i).unwrap();
                let (index, size) = (i as u64, u64::from(n));
                assert!(verify_inclusion(id, index, size, &path, &tree.root()), "{i} of {n}");
                assert!(!verify_inclusion(&[9; 32], index, size, &path, &tree.root()), "another id");
                if n > 1 {
                    assert!(!verify_inclusion(id, (index + 1) % size, size, &path, &tree.root()), "another index");
                }
            }
            assert!(tree.proof(usize::from(n)).is_none());
        }
        let mut reversed = ids(9);
        reversed.reverse();
        assert_eq!(root(&reversed), root(&ids(9)), "arrival order does not matter");
        let mut changed = ids(9);
        changed[3][0] ^= 1;
        assert_ne!(root(&changed), root(&ids(9)));
        assert_eq!(hex::encode(root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
