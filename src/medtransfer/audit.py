"""The leakage audit: exact and near-duplicate images within a task and between tasks.

Every image gets a fingerprint while `prepare` decodes it:

- an exact hash: 64 bits of BLAKE2b over its decoded RGB pixels;
- per variant (the whole image squashed to a square, and its central square crop) a 63-bit
  perceptual hash (pHash: signs of the 8x8 lowest DCT frequencies of a 32x32 gray thumbnail,
  DC left out, against their median) and that 16x16 gray thumbnail.

Gray thumbnails and low frequencies survive resizing, re-encoding and gray conversion; the
central-crop variant matches an image with its center-cropped copy (MedMNIST crops each
image to the square of its shorter side before shrinking it to 28 px).

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
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

VARIANTS = ("full", "center")
HASH_SIDE = 32
THUMB_SIDE = 16
DCT_SIDE = 8
HASH_BITS = DCT_SIDE * DCT_SIDE - 1
KIND_EXACT, KIND_NEAR = "exact", "near"


@dataclass
class Fingerprints:
    """Fingerprints of n images: exact (n,) uint64, phash (n, 2) uint64, thumbs (n, 2, 16, 16)."""

    exact: np.ndarray
    phash: np.ndarray
    thumbs: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Fingerprints:
        return cls(
            np.zeros(n, np.uint64),
            np.zeros((n, len(VARIANTS)), np.uint64),
            np.zeros((n, len(VARIANTS), THUMB_SIDE, THUMB_SIDE), np.uint8),
        )

    def __len__(self) -> int:
        return len(self.exact)

    def take(self, rows: Any) -> Fingerprints:
        rows = np.asarray(rows, dtype=np.int64)
        return Fingerprints(self.exact[rows], self.phash[rows], self.thumbs[rows])

    def save(self, path: Any) -> None:
        from .io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, exact=self.exact, phash=self.phash, thumbs=self.thumbs)

    @classmethod
    def load(cls, path: Any) -> Fingerprints:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["exact"], data["phash"], data["thumbs"])


def _central_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _gray_square(image: Image.Image, side: int) -> np.ndarray:
    shrinking = min(image.size) >= side
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(image.resize((side, side), method), dtype=np.float64)


def perceptual_hash(gray: Image.Image) -> int:
    """63-bit pHash of a gray image: low DCT frequencies above (1) or below (0) their median."""
    from scipy.fft import dctn

    coefficients = dctn(_gray_square(gray, HASH_SIDE), norm="ortho")[:DCT_SIDE, :DCT_SIDE]
    ac = coefficients.ravel()[1:]  # the DC term only says how bright the image is
    bits = ac > np.median(ac)
    return int(np.packbits(np.concatenate([[False], bits])).view(">u8")[0])


def fingerprint(rgb: Image.Image) -> tuple[int, list[int], list[np.ndarray]]:
    """Exact hash, and pHash and thumbnail of each variant, of a decoded RGB image."""
    pixels = np.asarray(rgb, dtype=np.uint8)
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=8)
    digest.update(str(pixels.shape).encode())
    exact = int.from_bytes(digest.digest(), "big")
    gray = rgb.convert("L")
    hashes, thumbs = [], []
    for variant in (gray, _central_square(gray)):
        hashes.append(perceptual_hash(variant))
        thumbs.append(_gray_square(variant, THUMB_SIDE).round().astype(np.uint8))
    return exact, hashes, thumbs


def fingerprint_into(prints: Fingerprints, position: int, rgb: Image.Image) -> None:
    exact, hashes, thumbs = fingerprint(rgb)
    prints.exact[position] = exact
    prints.phash[position] = hashes
    prints.thumbs[position] = thumbs


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


def merge_groups(keys: list[str | None], pairs: np.ndarray) -> np.ndarray:
    """Group ids (0..g-1) of n images: images with one configured key share a group, and so do
    the two images of every pair (union-find); an image without key or pair is its own group."""
    n = len(keys)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_of: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            union(i, first_of.setdefault(key, i))
    for i, j in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
        union(int(i), int(j))
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    return np.unique(roots, return_inverse=True)[1]


SPLIT_PAIRS = (("train", "test"), ("val", "test"), ("train", "val"))


def crossings(split_of: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """How many pairs (a[i], b[i]) have their two images in each pair of different splits;
    positions in no split (left out of the task's split) are ignored."""
    sa, sb = split_of[a], split_of[b]
    return {
        f"{x}-{y}": int(np.sum(((sa == x) & (sb == y)) | ((sa == y) & (sb == x))))
        for x, y in SPLIT_PAIRS
    }


def _task_prints(prints_path: Any, meta: dict[str, Any]) -> Fingerprints:
    return Fingerprints.load(prints_path).take(meta["rows"])


def audit_task(
    meta: dict[str, Any],
    prints_path: Any,
    pairs_path: Any,
    summary_path: Any,
    near_bits: int,
    near_correlation: float,
) -> dict[str, Any]:
    """Every exact and near-duplicate pair within one task (positions in the task's rows)."""
    from .io import write_csv, write_json

    matches = find_duplicates(_task_prints(prints_path, meta), near_bits, near_correlation)
    write_csv(matches_table(matches, meta["files"]), pairs_path)
    keys = meta.get("groups") or []
    configured = {k for k in keys if k is not None}
    summary = {
        "task": meta["task"],
        "n_images": meta["n_images"],
        "exact_pairs": matches.count(KIND_EXACT),
        "near_pairs": matches.count(KIND_NEAR),
        "images_in_a_pair": len(set(matches.a.tolist()) | set(matches.b.tolist())),
        "configured_groups": len(configured),
        "images_without_group": sum(k is None for k in keys) if keys else meta["n_images"],
        "near_bits": near_bits,
        "near_correlation": near_correlation,
    }
    write_json(summary_path, summary)
    return summary


def audit_overlap(
    source_meta: dict[str, Any],
    source_prints: Any,
    target_meta: dict[str, Any],
    target_prints: Any,
    pairs_path: Any,
    summary_path: Any,
    near_bits: int,
    near_correlation: float,
) -> dict[str, Any]:
    """Images of a source task that reappear in a target task (a source network may have been
    trained on a target test image). Records which target positions have a copy."""
    from .io import write_csv, write_json

    matches = find_overlap(
        _task_prints(source_prints, source_meta),
        _task_prints(target_prints, target_meta),
        near_bits,
        near_correlation,
    )
    write_csv(matches_table(matches, source_meta["files"], target_meta["files"]), pairs_path)
    matched = {
        kind: sorted(set(matches.b[matches.kind == kind].tolist()))
        for kind in (KIND_EXACT, KIND_NEAR)
    }
    summary = {
        "source": source_meta["task"],
        "target": target_meta["task"],
        "exact_pairs": matches.count(KIND_EXACT),
        "near_pairs": matches.count(KIND_NEAR),
        "target_images_matched": {kind: len(rows) for kind, rows in matched.items()},
        "target_rows_matched": matched,
    }
    write_json(summary_path, summary)
    return summary


def overlap_message(summary: dict[str, Any]) -> str:
    counts = summary["target_images_matched"]
    return (
        f"source {summary['source']} and target {summary['target']} share images: "
        f"{counts[KIND_EXACT]} target image(s) have an exact and {counts[KIND_NEAR]} a near "
        f"copy among the source's images (results/audit/overlap/{summary['source']}/"
        f"{summary['target']}.csv)"
    )


def copies_in_test(overlap: dict[str, Any] | None, test_rows: list[int], source: str) -> dict:
    """How many of a run's test images have an exact / near copy among its source's images:
    zero for no source; unknown (not audited) for ImageNet, whose images are not here."""
    from .config import IMAGENET, NO_SOURCE

    if source == NO_SOURCE:
        return {"audited": True, KIND_EXACT: 0, KIND_NEAR: 0}
    if overlap is None:
        why = "ImageNet's images are not available" if source == IMAGENET else "no audit input"
        return {"audited": False, KIND_EXACT: None, KIND_NEAR: None, "why": why}
    test = set(test_rows)
    return {
        "audited": True,
        **{kind: len(test & set(rows)) for kind, rows in overlap["target_rows_matched"].items()},
    }


def audit_report(
    task_summaries: list[dict], overlaps: list[dict], splits: list[dict]
) -> tuple[Any, Any, Any]:
    """Three tables: per task, per (source, target), and per (task, seed) split leakage."""
    import pandas as pd

    tasks = pd.DataFrame(task_summaries)
    pairs = pd.DataFrame(
        [
            {
                "source": o["source"],
                "target": o["target"],
                "exact_pairs": o["exact_pairs"],
                "near_pairs": o["near_pairs"],
                "target_images_exact": o["target_images_matched"][KIND_EXACT],
                "target_images_near": o["target_images_matched"][KIND_NEAR],
            }
            for o in overlaps
        ],
        columns=[
            "source",
            "target",
            "exact_pairs",
            "near_pairs",
            "target_images_exact",
            "target_images_near",
        ],
    )
    rows = []
    for split in splits:
        leakage = split.get("leakage", {})
        rows.append(
            {
                "task": split["task"],
                "seed": split["seed"],
                "mode": split["mode"],
                **{f"{s}_groups": n for s, n in split.get("groups", {}).items()},
                **{
                    f"{s}_fraction": f for s, f in split.get("fractions", {}).get("all", {}).items()
                },
                "size_drift": split.get("size_drift"),
                "size_warning": split.get("size_warning"),
                **{
                    f"{what}_{pair}": leakage.get(what, {}).get(pair)
                    for what in ("groups_crossing", "exact", "near")
                    for pair in ("train-test", "val-test")
                },
            }
        )
    return tasks, pairs, pd.DataFrame(rows)


def write_audit_report(
    task_files: list[str], overlap_files: list[str], split_files: list[str], outputs: dict
) -> None:
    """results/audit/: tasks.csv, overlap.csv, splits.csv and summary.md (all three)."""
    from .io import read_json, write_csv, write_text
    from .tables import to_markdown

    tasks, overlaps, splits = audit_report(
        [read_json(f) for f in task_files],
        [read_json(f) for f in overlap_files],
        [read_json(f) for f in split_files],
    )
    write_csv(tasks, outputs["tasks"])
    write_csv(overlaps, outputs["overlaps"])
    write_csv(splits, outputs["splits"])
    sections = [
        ("Duplicates within each task", tasks),
        ("Source images that reappear in a target task", overlaps),
        ("Leakage across the splits of each seed", splits),
    ]
    write_text(
        outputs["md"],
        "\n".join(
            f"## {title}\n\n{to_markdown(t) if len(t) else '(none)'}\n" for title, t in sections
        ),
    )
