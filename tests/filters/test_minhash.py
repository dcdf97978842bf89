"""Batched MinHash, LSH parameter choice and bucket edges (filters/minhash.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash

from curate.filters.dedup_text import Normalization, jaccard, shingle_hashes, shingle_set
from curate.filters.minhash import (
    MinHasher,
    affine32_permutations,
    band_keys,
    bucket_edges,
    choose_lsh_params,
    estimated_jaccard,
)


@pytest.fixture
def real_texts(jsonl_rows) -> list[str]:
    return [row["text"] for row in jsonl_rows]


def _edit(text: str, rate: float, seed: int) -> str:
    """Drop a share of words at random, as the benchmark's mirrors do."""
    rng = random.Random(seed)
    return " ".join(word for word in text.split() if rng.random() >= rate)


def test_batched_signatures_equal_datasketch_minhash_per_document(real_texts):
    texts = [*real_texts, "", "two words"]
    shingles = [shingle_hashes(Normalization().apply(t)) for t in texts]
    signatures = MinHasher(num_perm=128, seed=1).signatures(shingles)
    for doc_shingles, signature in zip(shingles, signatures, strict=True):
        reference = MinHash(num_perm=128, seed=1, hashfunc=int)
        reference.update_batch(doc_shingles.tolist())
        np.testing.assert_array_equal(signature, reference.hashvalues)


@pytest.mark.parametrize(("num_perm", "seed"), [(128, 1), (256, 42), (9, 0)])
def test_permutations_are_datasketchs(num_perm, seed):
    a, b = affine32_permutations(num_perm, seed)
    expected_a, expected_b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    np.testing.assert_array_equal(a, expected_a)
    np.testing.assert_array_equal(b, expected_b)
    assert a.dtype == b.dtype == np.uint32 and (a % 2 == 1).all()


def test_signature_does_not_depend_on_batch_neighbours(real_texts):
    shingles = [shingle_hashes(Normalization().apply(t)) for t in real_texts]
    hasher = MinHasher(num_perm=64, seed=3)
    together = hasher.signatures(shingles)
    alone = np.stack([hasher.signatures([s])[0] for s in shingles])
    np.testing.assert_array_equal(together, alone)


def test_estimated_jaccard_tracks_true_jaccard_of_edited_real_text(real_texts):
    text = max(real_texts, key=len)  # ~11k words
    hasher = MinHasher(num_perm=256, seed=1)
    for rate in (0.0, 0.01, 0.03):
        edited = _edit(text, rate, seed=7)
        a, b = (Normalization().apply(t) for t in (text, edited))
        true = jaccard(shingle_set(a), shingle_set(b))
        sig_a, sig_b = hasher.signatures([shingle_hashes(a), shingle_hashes(b)])
        # Standard error of the estimate is sqrt(J(1-J)/256) <= 0.031; allow 4 of them.
        assert abs(estimated_jaccard(sig_a, sig_b) - true) < 0.125


def test_default_lsh_params_find_pairs_at_jaccard_08_more_often_than_finewebs():
    default = choose_lsh_params(threshold=0.7, num_perm=128, false_negative_weight=0.8)
    fineweb = choose_lsh_params(threshold=0.7, num_perm=112, bands=14, rows=8)
    assert (default.bands, default.rows) == (18, 7)
    assert default.detection_probability(0.8) > 0.98
    assert fineweb.detection_probability(0.8) == pytest.approx(0.924, abs=1e-3)


def test_explicit_bands_must_fit_num_perm():
    with pytest.raises(ValueError, match="exceeds num_perm"):
        choose_lsh_params(threshold=0.7, num_perm=100, bands=14, rows=8)


def test_band_keys_match_exactly_when_a_band_matches():
    sig = np.arange(128, dtype=np.uint32)
    other = sig.copy()
    other[0] = 999  # first band differs, the rest are equal
    params = choose_lsh_params(0.7, 128, bands=16, rows=8)
    keys, other_keys = band_keys(sig, params), band_keys(other, params)
    assert [k == o for k, o in zip(keys, other_keys, strict=True)] == [False] + [True] * 15


def test_bucket_edges_are_a_star_to_the_smallest_id():
    assert sorted(bucket_edges(["c", "a", "b"], None, None)) == [("a", "b"), ("a", "c")]


def test_verified_bucket_splits_into_stars_of_similar_members():
    rng = np.random.default_rng(0)
    base_1, base_2 = rng.integers(0, 2**32, size=(2, 100), dtype=np.uint32)
    near_1 = base_1.copy()
    near_1[:10] += 1  # estimated Jaccard 0.9 with base_1
    near_2 = base_2.copy()
    near_2[:20] += 1  # 0.8 with base_2
    signatures = np.stack([base_1, near_1, base_2, near_2])
    edges = bucket_edges(["a", "b", "c", "d"], signatures, threshold=0.75)
    assert sorted(edges) == [("a", "b"), ("c", "d")]


def test_a_member_unlike_the_centre_joins_through_a_member_it_matches():
    """A ~ B ~ C with A the smallest id and C unlike A: C is linked to B, not left alone."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, size=100, dtype=np.uint32)
    b, c = a.copy(), a.copy()
    b[:20] += 1  # 0.8 with a
    c[:20] += 1
    c[20:40] += 1  # 0.8 with b, 0.6 with a
    edges = bucket_edges(["a", "b", "c"], np.stack([a, b, c]), threshold=0.75)
    assert sorted(edges) == [("a", "b"), ("b", "c")]


def _datasketch_optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight):
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)


@pytest.mark.parametrize("num_perm", [8, 16, 64, 128, 250, 256])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.75, 0.8, 0.9])
@pytest.mark.parametrize("false_negative_weight", [0.5, 0.8, 0.95])
def test_lsh_parameters_are_the_ones_datasketch_chooses(num_perm, threshold, false_negative_weight):
    ours = choose_lsh_params(threshold, num_perm, false_negative_weight)
    theirs = _datasketch_optimal_param(threshold, num_perm, 1 - false_negative_weight, false_negative_weight)
    assert (ours.bands, ours.rows) == theirs


def test_lsh_parameters_at_a_large_num_perm_are_datasketchs_too():
    ours = choose_lsh_params(0.8, 1024, 0.8)
    assert (ours.bands, ours.rows) == _datasketch_optimal_param(0.8, 1024, 0.2, 0.8)
