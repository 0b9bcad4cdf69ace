"""Fingerprints of every image, taken while `prepare` decodes it (what the leakage audit
compares):

- an exact hash: 64 bits of BLAKE2b over its decoded RGB pixels;
- per variant (the whole image squashed to a square, and its central square crop) a 63-bit
  perceptual hash (pHash: signs of the 8x8 lowest DCT frequencies of a 32x32 gray thumbnail,
  DC left out, against their median) and that 16x16 gray thumbnail.

Gray thumbnails and low frequencies survive resizing, re-encoding and gray conversion; the
central-crop variant matches an image with its center-cropped copy (MedMNIST crops each
image to the square of its shorter side before shrinking it to 28 px).
"""

from __future__ import annotations

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
