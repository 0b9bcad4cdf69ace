"""Atomic file output: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name is unique per call, so concurrent jobs never share it, and it ends
    with the target's whole name so that libraries that check suffixes (Keras wants
    '.weights.h5' and '.keras') accept it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{target.name}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file readable by its owner only; a result is shared like any
        # file open() would create, under the process umask
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove what a killed writer of `target` left (its '.tmp-XXXXXXXX-<name>' files).

    One job writes one output, so any such file beside it is from an earlier, killed try.
    """
    if not target.parent.is_dir():
        return []
    pattern = re.compile(r"\.tmp-[A-Za-z0-9_]{8}-" + re.escape(target.name))
    stale = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text(path: str | os.PathLike, text: str) -> None:
    # surrogate escapes carry file names that are not UTF-8 through as their original bytes
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def write_csv(frame: Any, path: str | os.PathLike, float_format: str | None = "%.6f") -> None:
    """A pandas frame as CSV, written like write_text (file names as their bytes)."""
    with atomic_path(path) as tmp:
        frame.to_csv(
            tmp,
            index=False,
            float_format=float_format,
            encoding="utf-8",
            errors="surrogateescape",
        )


def read_csv(path: str | os.PathLike, **options: Any) -> Any:
    """A CSV this workflow wrote, as a pandas frame; a damaged one is refused by name."""
    import pandas as pd

    try:
        return pd.read_csv(path, encoding="utf-8", encoding_errors="surrogateescape", **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UnreadableFile(f"{path} is not a complete CSV file: {error}") from None


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


class UnreadableFile(ValueError):
    """A result file that is not what its writer wrote (truncated, edited); names the file."""


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UnreadableFile(f"{path} is not a complete JSON file: {error}") from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
