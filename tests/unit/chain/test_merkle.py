"""RFC 6962 / RFC 9162 Merkle trees held to the published known answers (the test vectors that
transparency-dev/merkle carries), its proof-mutation corpus, and random trees."""

from __future__ import annotations

import random

import pytest

from aiaudit.pipeline.chain import merkle
from aiaudit.pipeline.chain.merkle import ProofError

LEAF_INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                          "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # ROOTS[n - 1] is the root of the first n leaves
EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(x: str) -> bytes:
    return bytes.fromhex(x)


INCLUSION = [  # (leaf index, tree size, path)
    (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (0, 1, []),
]
CONSISTENCY = [  # (old size, size, proof)
    (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (1, 1, []),
]
LEAVES = [merkle.hash_leaf(x) for x in LEAF_INPUTS]


def ZERO(a: int, b: int) -> bytes:  # noqa: N802  # a placeholder subtree, for the shape of a path only
    return bytes(32)


def subtree_of(leaves: list[bytes]):
    return lambda a, b: merkle.root_of(leaves[a:b])


def test_published_roots_for_every_prefix_of_the_eight_leaves():
    assert merkle.root_of([]) == EMPTY == merkle.CompactRange().root()
    rng = merkle.CompactRange()
    for n in range(1, 9):
        assert merkle.root_of(LEAVES[:n]) == ROOTS[n - 1]
        rng.append(LEAVES[n - 1])
        assert rng.root() == ROOTS[n - 1] and rng.size == n


def test_compact_range_reports_completed_subtrees_and_restores_from_its_hashes():
    rng = merkle.CompactRange()
    done = [node for leaf in LEAVES for node in rng.append(leaf)]
    assert (3, 0, ROOTS[7]) in done and (2, 1, merkle.root_of(LEAVES[4:8])) in done
    assert len(done) == 7  # every interior node of a perfect 8-leaf tree, once
    part = merkle.CompactRange()
    for leaf in LEAVES[:6]:
        part.append(leaf)
    restored = merkle.CompactRange(part.size, list(part.hashes))
    restored.append(LEAVES[6])
    assert restored.root() == ROOTS[6]
    with pytest.raises(ValueError):
        merkle.CompactRange(6, [ROOTS[0]])  # size 6 has two perfect subtrees


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_published_inclusion_proofs(index, size, path):
    assert merkle.inclusion_proof(index, size, subtree_of(LEAVES)) == path
    merkle.verify_inclusion(index, size, LEAVES[index], path, ROOTS[size - 1])


@pytest.mark.parametrize("old,size,proof", CONSISTENCY)
def test_published_consistency_proofs(old, size, proof):
    assert merkle.consistency_proof(old, size, subtree_of(LEAVES)) == proof
    merkle.verify_consistency(old, size, ROOTS[old - 1], ROOTS[size - 1], proof)


def _inclusion_mutations(index, size, proof, root, leaf):
    out = [(index - 1, size, leaf, proof, root, "index - 1"), (index + 1, size, leaf, proof, root, "index + 1"),
           (index ^ 2, size, leaf, proof, root, "index ^ 2"), (index, size * 2, leaf, proof, root, "size * 2"),
           (index, size // 2, leaf, proof, root, "size / 2"), (index, size, SOME, proof, root, "wrong leaf"),
           (index, size, leaf, proof, EMPTY, "empty root"), (index, size, leaf, proof, SOME, "random root"),
           (index, size, leaf, [*proof, b""], root, "trailing garbage"),
           (index, size, leaf, [*proof, root], root, "trailing root"),
           (index, size, leaf, [b"", *proof], root, "preceding garbage"),
           (index, size, leaf, [root, *proof], root, "preceding root")]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        out.append((index, size, leaf, bad, root, f"proof[{i}] bit 3"))
    if proof:
        out.append((index, size, leaf, proof[:-1], root, "removed component"))
    if len(proof) > 1:
        out.append((index, size, leaf, [proof[0], SOME, *proof[1:]], root, "inserted component"))
    return out


@pytest.mark.parametrize("index,size,path", INCLUSION[:4])
def test_every_inclusion_mutation_is_rejected(index, size, path):
    for i, s, leaf, proof, root, what in _inclusion_mutations(index, size, path, ROOTS[size - 1], LEAVES[index]):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(i, s, leaf, proof, root)
            pytest.fail(f"accepted: {what}")


def _consistency_mutations(old, size, root1, root2, proof):
    out = [(old - 1, size, root1, root2, proof, "old - 1"), (old + 1, size, root1, root2, proof, "old + 1"),
           (old ^ 2, size, root1, root2, proof, "old ^ 2"), (old, size * 2, root1, root2, proof, "size * 2"),
           (old, size // 2, root1, root2, proof, "size / 2"), (old, size, SOME, root2, proof, "wrong root1"),
           (old, size, root1, SOME, proof, "wrong root2"), (old, size, root2, root1, proof, "swapped roots"),
           (old, size, root1, root2, [], "empty proof"), (old, size, root1, root2, [*proof, b""], "trailing garbage"),
           (old, size, root1, root2, [*proof, root1], "trailing root1"),
           (old, size, root1, root2, [*proof, root2], "trailing root2"),
           (old, size, root1, root2, [b"", *proof], "preceding garbage"),
           (old, size, root1, root2, [root1, *proof], "preceding root1"),
           (old, size, root1, root2, [root2, *proof], "preceding root2"),
           (old, size, root1, root2, [proof[0], *proof], "preceding proof[0]"),
           (old, size, root1, root2, proof[:-1], "truncated proof")]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        out.append((old, size, root1, root2, bad, f"proof[{i}] bit 4"))
    return out


@pytest.mark.parametrize("old,size,proof", CONSISTENCY[:4])
def test_every_consistency_mutation_is_rejected(old, size, proof):
    for o, s, r1, r2, p, what in _consistency_mutations(old, size, ROOTS[old - 1], ROOTS[size - 1], proof):
        with pytest.raises(ProofError):
            merkle.verify_consistency(o, s, r1, r2, p)
            pytest.fail(f"accepted: {what}")


def test_edge_cases_of_the_rfc():
    merkle.verify_consistency(0, 0, SOME, SOME, [])
    merkle.verify_consistency(0, 5, SOME, ROOTS[4], [])  # an empty tree is a prefix of any tree
    for old, size, r1, r2, proof in ((1, 1, ROOTS[0], ROOTS[1], []), (2, 1, ROOTS[1], ROOTS[0], []),
                                     (1, 2, ROOTS[0], ROOTS[1], []), (0, 1, EMPTY, EMPTY, [EMPTY]),
                                     (1, 1, EMPTY, EMPTY, [EMPTY])):
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, r1, r2, proof)
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 4)):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, SOME, [], SOME)
    with pytest.raises(ProofError, match="32"):
        merkle.verify_inclusion(0, 1, b"", [], b"")


def _flip(b: bytes, bit: int) -> bytes:
    i = bit // 8
    return b[:i] + bytes([b[i] ^ (1 << (bit % 8))]) + b[i + 1:]


def test_random_trees_every_proof_verifies_and_every_single_bit_change_does_not():
    rnd = random.Random(6962)
    for _ in range(12):
        n = rnd.randint(1, 300)
        leaves = [merkle.hash_leaf(rnd.randbytes(rnd.randint(0, 40))) for _ in range(n)]
        sub = subtree_of(leaves)
        rng = merkle.CompactRange()
        roots = []
        for leaf in leaves:
            rng.append(leaf)
            roots.append(rng.root())
        assert roots[-1] == merkle.root_of(leaves)
        for _ in range(10):
            size = rnd.randint(1, n)
            index = rnd.randrange(size)
            path = merkle.inclusion_proof(index, size, sub)
            merkle.verify_inclusion(index, size, leaves[index], path, roots[size - 1])
            old = rnd.randint(1, size)
            proof = merkle.consistency_proof(old, size, sub)
            merkle.verify_consistency(old, size, roots[old - 1], roots[size - 1], proof)
            for _ in range(8):  # single-bit changes of proof, root and size are all refused
                if path:
                    i = rnd.randrange(len(path))
                    bad = [*path[:i], _flip(path[i], rnd.randrange(256)), *path[i + 1:]]
                    with pytest.raises(ProofError):
                        merkle.verify_inclusion(index, size, leaves[index], bad, roots[size - 1])
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(index, size, leaves[index], path, _flip(roots[size - 1], rnd.randrange(256)))
                # A size is bound to a root by the signed checkpoint, not by the proof: a changed size is
                # refused whenever its audit path has another length (RFC 9162 step 5, sn == 0).
                other = size ^ (1 << rnd.randrange(size.bit_length() + 1))
                if other > index and len(merkle.inclusion_proof(index, other, ZERO)) != len(path):
                    with pytest.raises(ProofError):
                        merkle.verify_inclusion(index, other, leaves[index], path, roots[size - 1])
                if proof:
                    j = rnd.randrange(len(proof))
                    bad = [*proof[:j], _flip(proof[j], rnd.randrange(256)), *proof[j + 1:]]
                    with pytest.raises(ProofError):
                        merkle.verify_consistency(old, size, roots[old - 1], roots[size - 1], bad)
                    with pytest.raises(ProofError):
                        merkle.verify_consistency(old, size, roots[old - 1], _flip(roots[size - 1], rnd.randrange(256)),
                                                  proof)


def test_a_range_proof_with_its_run_of_leaves_gives_the_root_for_every_run_of_small_trees():
    for size in range(1, 34):
        leaves = [bytes([i]) * 32 for i in range(size)]
        root = merkle.root_of(leaves)
        for first in range(size):
            for end in range(first + 1, size + 1):
                proof = merkle.range_proof(first, end, size, lambda a, b: merkle.root_of(leaves[a:b]))
                assert len(proof) <= 2 * size.bit_length()
                assert merkle.root_from_range(first, leaves[first:end], size, proof) == root
    whole = merkle.range_proof(0, 20, 20, lambda a, b: merkle.root_of(leaves[a:b]))
    assert whole == []  # the whole tree: the leaves are the proof


def test_a_range_proof_does_not_survive_a_changed_leaf_hash_or_a_hash_too_many_or_too_few():
    rng = random.Random(9)
    leaves = [rng.randbytes(32) for _ in range(1000)]
    root, first, end = merkle.root_of(leaves), 123, 877
    proof = merkle.range_proof(first, end, 1000, lambda a, b: merkle.root_of(leaves[a:b]))
    run = leaves[first:end]
    assert merkle.root_from_range(first, run, 1000, proof) == root
    assert merkle.root_from_range(first, run[:100] + [bytes(32)] + run[101:], 1000, proof) != root
    try:  # the same run claimed one place on: another root, or a proof of the wrong shape
        assert merkle.root_from_range(first + 1, run, 1000, proof) != root
    except ProofError:
        pass
    assert merkle.root_from_range(first, run, 1000, [*proof[:2], bytes(32), *proof[3:]]) != root
    with pytest.raises(ProofError, match="fewer"):
        merkle.root_from_range(first, run, 1000, proof[:-1])
    with pytest.raises(ProofError, match="more"):
        merkle.root_from_range(first, run, 1000, [*proof, bytes(32)])
    with pytest.raises(ProofError, match="not 32"):
        merkle.root_from_range(first, run, 1000, [*proof[:-1], b"short"])
    with pytest.raises(ProofError, match="not a non-empty run"):
        merkle.root_from_range(990, run, 1000, proof)  # runs past the tree's end
