"""MinHash signatures for a batch of documents at once, LSH band keys, and LSH parameter choice.

Signatures are bit-identical to datasketch's ``MinHash`` given the same shingle hash values, seed and
``num_perm`` (same permutations, same arithmetic), but a whole batch is hashed in one vectorised numpy
pass instead of one ``update_batch`` per document (see bench/dedup.py for the measured difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

# datasketch >= 2's default "affine32" scheme (datasketch/minhash.py): every 32-bit shingle hash is
# pre-mixed with the MurmurHash3 finalizer, then permuted as (a*h + b) mod 2^32 with odd a.
MAX_HASH = np.uint32((1 << 32) - 1)
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
# Rows of the (shingles x num_perm) matrix permuted at once: 8 MB of uint32 at num_perm=128.
_BLOCK_ROWS = 16_384


def fmix32(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (a bijection that spreads every input bit over the output)."""
    s1, m1, s2, m2, s3 = _FMIX32
    with np.errstate(over="ignore"):
        hashes = hashes ^ (hashes >> s1)
        hashes = hashes * m1
        hashes = hashes ^ (hashes >> s2)
        hashes = hashes * m2
        return hashes ^ (hashes >> s3)


@dataclass(frozen=True)
class LshParams:
    bands: int
    rows: int

    def detection_probability(self, jaccard: float) -> float:
        """Chance that a pair of this similarity shares at least one band: 1 - (1 - J^r)^b."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands


# datasketch 2.0.0's parameter choice (datasketch/lsh.py ``_optimal_param``, MIT licence, (c) Eric Zhu):
# its parameter choice is private API, so a datasketch release could drop it. datasketch integrates with
# scipy's adaptive `quad`; the integrands 1 - (1 - s^r)^b and (1 - s^r)^b are polynomials of degree r*b
# <= num_perm, which Gauss-Legendre quadrature with num_perm/2 + 1 nodes integrates exactly, in numpy and
# for every (bands, rows) at once: the same choice (tests/filters/test_minhash.py compares it with
# datasketch's own for many settings) without importing scipy (~0.25 CPU-s in the driver).
def _optimal_param(
    threshold: float, num_perm: int, false_positive_weight: float, false_negative_weight: float
) -> tuple[int, int]:
    """Bands x rows minimising the weighted false-positive and false-negative areas (datasketch's); the
    first in its loop order (fewest bands, then fewest rows) on a tie."""
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    s_low, w_low = threshold / 2 * (nodes + 1), threshold / 2 * weights  # s in [0, threshold]
    s_high, w_high = (1 - threshold) / 2 * nodes + (1 + threshold) / 2, (1 - threshold) / 2 * weights
    best: tuple[float, int, int] = (float("inf"), 0, 0)
    for rows in range(1, num_perm + 1):
        bands = np.arange(1, num_perm // rows + 1, dtype=np.float64)[:, None]
        # (1 - s^r)^b, the chance that a pair of similarity s shares no band, as exp(b * log1p(-s^r))
        miss_low = np.exp(bands * np.log1p(-(s_low**rows))[None, :])
        miss_high = np.exp(bands * np.log1p(-(s_high**rows))[None, :])
        false_positive = ((1 - miss_low) * w_low).sum(axis=1)
        false_negative = (miss_high * w_high).sum(axis=1)
        errors = false_positive * false_positive_weight + false_negative * false_negative_weight
        i = int(np.argmin(errors))
        best = min(best, (float(errors[i]), i + 1, rows))
    return best[1], best[2]


def choose_lsh_params(
    threshold: float,
    num_perm: int,
    false_negative_weight: float = 0.8,
    bands: int | None = None,
    rows: int | None = None,
) -> LshParams:
    """Bands x rows: explicit when both are given (e.g. FineWeb's 14 x 8), else datasketch's choice.

    datasketch's ``_optimal_param`` minimises the weighted false-positive and false-negative areas
    under the S-curve around ``threshold``. Candidate pairs are verified by estimated Jaccard
    afterwards, so false positives cost only a comparison while false negatives are lost
    duplicates: hence the default weight of 0.8 on false negatives.
    """
    if bands is not None or rows is not None:
        if bands is None or rows is None:
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if bands * rows > num_perm:
            raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {num_perm}")
        return LshParams(bands, rows)
    b, r = _optimal_param(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)
    return LshParams(int(b), int(r))


def affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of datasketch 2.0.0's ``MinHash(num_perm, seed, scheme="affine32").permutations``
    (datasketch/minhash.py ``_init_permutations``, MIT licence): drawn here with the same generator calls
    rather than imported, since importing datasketch costs every worker ~0.25 CPU-s (it pulls in scipy).
    tests/filters/test_minhash.py checks both against datasketch itself."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: bijective
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


class MinHasher:
    """Vectorised MinHash over batches of shingle-hash arrays, with datasketch's permutations."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        self.num_perm = num_perm
        self.seed = seed
        a, b = affine32_permutations(num_perm, seed)
        self._a = a[None, :]
        self._b = b[None, :]

    def _permute(self, hashes: np.ndarray, out: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # wrap-around mod 2^32 is the permutation itself
            np.multiply(fmix32(hashes)[:, None], self._a, out=out)
            out += self._b
        return out

    def signatures(self, shingles: Sequence[np.ndarray]) -> np.ndarray:
        """One uint32 signature row per document; a document without shingles gets all MAX_HASH
        (callers must not band such rows: every empty document would collide)."""
        lengths = np.fromiter((len(s) for s in shingles), dtype=np.int64, count=len(shingles))
        out = np.full((len(shingles), self.num_perm), MAX_HASH, dtype=np.uint32)
        if lengths.sum() == 0:
            return out
        flat = np.concatenate([np.asarray(s, dtype=np.uint32) for s in shingles])
        starts = np.concatenate([[0], np.cumsum(lengths)])
        buffer = np.empty((min(_BLOCK_ROWS, len(flat)), self.num_perm), dtype=np.uint32)
        for lo in range(0, len(flat), _BLOCK_ROWS):
            hi = min(lo + _BLOCK_ROWS, len(flat))
            block = self._permute(flat[lo:hi], buffer[: hi - lo])
            # Documents with at least one shingle inside [lo, hi).
            docs = np.nonzero((starts[:-1] < hi) & (starts[1:] > lo) & (lengths > 0))[0]
            offsets = np.maximum(starts[docs], lo) - lo
            out[docs] = np.minimum(out[docs], np.minimum.reduceat(block, offsets, axis=0))
        return out


def band_keys(signature: np.ndarray, params: LshParams) -> list[tuple[int, int]]:
    """``(band, 64-bit hash of the band's rows)``: two documents share a key iff a band matches
    (up to a 2^-64 collision, which only adds a candidate that verification then checks)."""
    rows = np.ascontiguousarray(signature[: params.bands * params.rows]).reshape(params.bands, params.rows)
    return [(band, xxhash.xxh3_64_intdigest(rows[band].tobytes())) for band in range(params.bands)]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal signature positions: an unbiased estimate of the Jaccard similarity."""
    return float(np.count_nonzero(a == b)) / len(a)


# Most stars tried per bucket when verification splits it: bounds the work on a pathological bucket
# (thousands of unrelated documents sharing a band) to this many vectorised comparisons.
MAX_STARS_PER_BUCKET = 32
# Most (failed member, linked member) pairs compared per star for the second chance (bucket_edges);
# beyond it (a huge bucket) a failed member only starts the next star.
MAX_SECOND_CHANCE_PAIRS = 65_536


def bucket_edges(
    ids: Sequence[str], signatures: np.ndarray | None, threshold: float | None
) -> list[tuple[str, str]]:
    """Duplicate edges of one LSH bucket: a star to the smallest id, not all pairs.

    With ``threshold`` (and signatures), a member is linked only if its estimated Jaccard with the
    star's centre reaches it. A member that fails the centre is then compared with the members the
    centre took: one it matches joins the star through that member (a chain A ~ B ~ C with A the centre
    and C unlike A stays one cluster, whichever id is smallest: the same clusters in one run as across
    segments, where the centre is often an older version's document). Members left over form the next
    star around their own smallest id, so a bucket holding two unrelated groups yields two stars.
    """
    order = sorted(range(len(ids)), key=ids.__getitem__)
    if threshold is None or signatures is None:
        return [(ids[order[0]], ids[i]) for i in order[1:]]
    edges: list[tuple[str, str]] = []
    remaining = np.asarray(order)
    for _ in range(MAX_STARS_PER_BUCKET):
        if len(remaining) < 2:
            break
        centre, others = remaining[0], remaining[1:]
        needed = threshold * signatures.shape[1]
        agreement = np.count_nonzero(signatures[others] == signatures[centre], axis=1)
        linked = agreement >= needed
        edges.extend((ids[centre], ids[i]) for i in others[linked])
        members, failed = others[linked], others[~linked]
        if len(members) and len(failed) and len(members) * len(failed) <= MAX_SECOND_CHANCE_PAIRS:
            pairs = signatures[failed][:, None, :] == signatures[members][None, :, :]
            agreement = np.count_nonzero(pairs, axis=2)  # failed x members
            joined = (agreement >= needed).any(axis=1)
            best = members[np.argmax(agreement, axis=1)]
            edges.extend((ids[b], ids[f]) for f, b in zip(failed[joined], best[joined], strict=True))
            failed = failed[~joined]
        remaining = failed
    return edges
