"""Exact and near-duplicate pairs among fingerprints (medtransfer.fingerprints).

Two images are *exact* duplicates when their exact hashes agree, and *near* duplicates when,
in one variant, their pHashes differ in at most `near_bits` bits *and* their thumbnails
correlate at least `near_correlation`. The hash finds candidates without comparing all pairs
(multi-index hashing: split the 63 bits into `near_bits + 1` chunks; two hashes within
`near_bits` agree exactly on at least one chunk, so only images sharing a chunk value are
compared). The thumbnail check removes the chance matches that low-frequency hashes of
similar-looking images (chest X-rays) give.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .fingerprints import HASH_BITS, VARIANTS, Fingerprints

KIND_EXACT, KIND_NEAR = "exact", "near"


def _standardised(thumbs: np.ndarray) -> np.ndarray:
    """Thumbnails as zero-mean unit vectors: their dot product is the Pearson correlation.
    A flat thumbnail stays all zero and so correlates with nothing."""
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 1e-6)


def _chunks(n_chunks: int) -> list[tuple[int, int]]:
    """(shift, width) of `n_chunks` disjoint bit ranges that cover the 63 hash bits."""
    edges = np.linspace(0, HASH_BITS, n_chunks + 1).round().astype(int)
    return [(int(lo), int(hi - lo)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _bucket_pair_blocks(keys: np.ndarray, block: int = 2_000_000):
    """Yield (i, j) arrays, i < j, of all positions whose keys are equal, a bounded block of
    pairs at a time (a crowded bucket of similar-looking X-rays must not fill the memory)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    for size in np.unique(sizes[sizes > 1]):
        ii, jj = np.triu_indices(int(size), k=1)
        bucket_starts = starts[sizes == size]
        step = max(1, block // len(ii))
        for first in range(0, len(bucket_starts), step):
            chunk = bucket_starts[first : first + step, None]
            a, b = order[(chunk + ii).ravel()], order[(chunk + jj).ravel()]
            yield np.minimum(a, b), np.maximum(a, b)


def _unique_pairs(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    code = np.unique(a.astype(np.int64) * n + b)
    return code // n, code % n


def _exact_pairs(exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blocks = list(_bucket_pair_blocks(exact))
    if not blocks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([a for a, _ in blocks]), np.concatenate([b for _, b in blocks])


def _near_candidates(hashes: np.ndarray, near_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose hashes differ in at most `near_bits` bits: those sharing a chunk value,
    kept only where the whole hashes are that close."""
    n = len(hashes)
    firsts, seconds = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for shift, width in _chunks(near_bits + 1):
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        for a, b in _bucket_pair_blocks(keys):
            close = np.bitwise_count(hashes[a] ^ hashes[b]) <= near_bits
            firsts.append(a[close])
            seconds.append(b[close])
    return _unique_pairs(np.concatenate(firsts), np.concatenate(seconds), n)


def _correlations(unit: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), np.float32)
    for start in range(0, len(a), 200_000):  # bounded memory for huge candidate lists
        stop = start + 200_000
        out[start:stop] = np.einsum("ij,ij->i", unit[a[start:stop]], unit[b[start:stop]])
    return out


@dataclass
class Matches:
    """Duplicate pairs (a, b) of positions, their kind, Hamming distance and correlation."""

    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray  # 'exact' or 'near'
    hamming: np.ndarray
    correlation: np.ndarray
    variant: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def count(self, kind: str) -> int:
        return int(np.sum(self.kind == kind))

    def take(self, chosen: np.ndarray) -> Matches:
        return Matches(*(getattr(self, f.name)[chosen] for f in dataclasses.fields(self)))


def find_duplicates(
    prints: Fingerprints, near_bits: int = 6, near_correlation: float = 0.98
) -> Matches:
    """Exact and near-duplicate pairs among the images of `prints` (a < b)."""
    n = len(prints)
    exact_a, exact_b = _exact_pairs(prints.exact)
    exact_codes = set((exact_a.astype(np.int64) * n + exact_b).tolist())
    best: dict[int, tuple[int, float, int]] = {}
    for v in range(len(VARIANTS)):
        hashes = prints.phash[:, v]
        a, b = _near_candidates(hashes, near_bits)  # already within near_bits
        distance = np.bitwise_count(hashes[a] ^ hashes[b]).astype(np.int64)
        corr = _correlations(_standardised(prints.thumbs[:, v]), a, b)
        alike = corr >= near_correlation
        for i, j, d, c in zip(a[alike], b[alike], distance[alike], corr[alike], strict=True):
            code = int(i) * n + int(j)
            if code not in best or d < best[code][0]:
                best[code] = (int(d), float(c), v)
    for i, j in zip(exact_a, exact_b, strict=True):
        best.setdefault(int(i) * n + int(j), (0, 1.0, 0))
    codes = np.array(sorted(best), dtype=np.int64)
    values = [best[c] for c in codes.tolist()]
    return Matches(
        a=codes // n if n else codes,
        b=codes % n if n else codes,
        kind=np.array(
            [KIND_EXACT if c in exact_codes else KIND_NEAR for c in codes.tolist()], dtype=object
        ),
        hamming=np.array([v[0] for v in values], dtype=np.int64),
        correlation=np.array([round(v[1], 4) for v in values], dtype=np.float64),
        variant=np.array([VARIANTS[v[2]] for v in values], dtype=object),
    )


def find_overlap(
    source: Fingerprints, target: Fingerprints, near_bits: int = 6, near_correlation: float = 0.98
) -> Matches:
    """Pairs (source position, target position) of duplicates between two image sets."""
    both = Fingerprints(
        np.concatenate([source.exact, target.exact]),
        np.concatenate([source.phash, target.phash]),
        np.concatenate([source.thumbs, target.thumbs]),
    )
    matches = find_duplicates(both, near_bits, near_correlation)
    across = matches.take((matches.a < len(source)) & (matches.b >= len(source)))
    return dataclasses.replace(across, b=across.b - len(source))


def matches_table(matches: Matches, files_a: list[str], files_b: list[str] | None = None):
    """The matched pairs as a DataFrame, with the files of both sides."""
    import pandas as pd

    files_b = files_a if files_b is None else files_b
    return pd.DataFrame(
        {
            "a": matches.a,
            "b": matches.b,
            "file_a": [files_a[i] for i in matches.a],
            "file_b": [files_b[j] for j in matches.b],
            "kind": matches.kind,
            "hamming": matches.hamming,
            "correlation": matches.correlation,
            "variant": matches.variant,
        }
    )
