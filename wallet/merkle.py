"""The Merkle tree over one checkpoint's chain links (pure: no stores, no clock).

Leaves are the links of the checkpoint's entries in seq order, each hashed as its 32 raw
bytes: leaf = SHA-256(0x00 || link); an inner node = SHA-256(0x01 || left || right). The
0x00/0x01 prefixes keep a leaf from ever passing for a node. Each level pairs nodes from
the left; an odd node at the end of a level is promoted to the next level unchanged (it is
not hashed with itself, so no two trees of different sizes share a root by duplication).
The root of one leaf is that leaf's hash.

An audit path lists, from the leaf up, the sibling hash at each level where the node has
one; which side each sibling is on follows from the leaf's index and the tree's size
(`path_shape`), so a proof also pins the entry's position: it holds only at that index.
"""

from __future__ import annotations

import hashlib

LEAF = b"\x00"
NODE = b"\x01"


def leaf_hash(link: str) -> bytes:
    return hashlib.sha256(LEAF + bytes.fromhex(link)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    return paired + [level[-1]] if len(level) % 2 else paired


def root(links: list[str]) -> str:
    """The hex root of the tree over `links` (at least one)."""
    if not links:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = [leaf_hash(link) for link in links]
    while len(level) > 1:
        level = _next_level(level)
    return level[0].hex()


def path_shape(index: int, size: int) -> list[str]:
    """From the leaf up, the side of each sibling the leaf at `index` has ("left" or
    "right"); a level where the node is promoted has none."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of {size} leaves")
    sides = []
    while size > 1:
        if index % 2:
            sides.append("left")
        elif index + 1 < size:
            sides.append("right")
        index, size = index // 2, (size + 1) // 2
    return sides


def proofs(links: list[str], indexes: list[int]) -> dict[int, list[str]]:
    """The audit paths (hex sibling hashes, leaf up) of the leaves at `indexes`, building the
    tree once: logarithmic in the tree's size each."""
    if not links:
        raise ValueError("a Merkle tree needs at least one leaf")
    wanted = {i: i for i in indexes}  # leaf index -> its node's index at the current level
    paths: dict[int, list[str]] = {i: [] for i in indexes}
    level = [leaf_hash(link) for link in links]
    while len(level) > 1:
        for leaf, at in wanted.items():
            sibling = at - 1 if at % 2 else at + 1
            if sibling < len(level):
                paths[leaf].append(level[sibling].hex())
            wanted[leaf] = at // 2
        level = _next_level(level)
    return paths


def verify(link: str, index: int, size: int, path: list[str], expected_root: str) -> bool:
    """Whether the audit path takes `link`, at `index` of a tree of `size` leaves, to the root."""
    try:
        sides = path_shape(index, size)
        if len(sides) != len(path):
            return False
        node = leaf_hash(link)
        for side, sibling_hex in zip(sides, path):
            sibling = bytes.fromhex(sibling_hex)
            if len(sibling) != 32:
                return False
            node = node_hash(sibling, node) if side == "left" else node_hash(node, sibling)
        return node.hex() == expected_root
    except (ValueError, TypeError):
        return False
