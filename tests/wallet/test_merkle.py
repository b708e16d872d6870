"""The Merkle tree of checkpoints (wallet/merkle.py): every leaf's audit path reaches the
root, a path is logarithmic, and a path moved, shortened or altered does not."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from wallet import merkle


def links(count: int) -> list[str]:
    return [hashlib.sha256(str(n).encode()).hexdigest() for n in range(count)]


def test_the_root_follows_the_published_definition() -> None:
    a, b, c = links(3)
    leaf = {x: hashlib.sha256(b"\x00" + bytes.fromhex(x)).digest() for x in (a, b, c)}
    ab = hashlib.sha256(b"\x01" + leaf[a] + leaf[b]).digest()
    # Three leaves: the odd third is promoted, not paired with itself.
    assert merkle.root([a, b, c]) == hashlib.sha256(b"\x01" + ab + leaf[c]).hexdigest()
    assert merkle.root([a]) == leaf[a].hex()
    assert merkle.path_shape(2, 3) == ["left"]
    assert merkle.path_shape(0, 3) == ["right", "right"]


@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_leaf_proves_against_the_root_and_only_where_it_is(size: int, data: st.DataObject) -> None:
    items = links(size)
    root = merkle.root(items)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = merkle.proofs(items, [index])[index]
    assert len(path) <= max(size - 1, 0).bit_length()
    assert merkle.verify(items[index], index, size, path, root)
    if size > 1:
        other = (index + 1) % size
        assert not merkle.verify(items[index], other, size, path, root)
        assert not merkle.verify(items[other], index, size, path, root)
        assert not merkle.verify(items[index], index, size, path[:-1], root)
        flipped = ("0" if path[0][0] != "0" else "1") + path[0][1:]
        assert not merkle.verify(items[index], index, size, [flipped, *path[1:]], root)
