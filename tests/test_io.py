"""Output files: atomic, readable by the team, file names as their bytes, read errors named."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from medtransfer.io import (
    UnreadableFile,
    atomic_path,
    read_json,
    write_csv,
    write_json,
    write_text,
)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_permissions_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        with open(tmp_path / "by_open.txt", "w") as handle:
            handle.write("x")
        write_text(tmp_path / "by_us.txt", "x")
        with atomic_path(tmp_path / "model.weights.h5") as tmp:
            tmp.write_bytes(b"weights")
    finally:
        os.umask(previous)
    expected = stat.S_IMODE((tmp_path / "by_open.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("by_us.txt", "model.weights.h5"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_a_file_name_that_is_not_utf8_is_written_as_its_bytes(tmp_path):
    name = os.fsdecode(b"lesion_\xe9t\xe9.jpg")  # Latin-1 bytes: a surrogate escape in Python
    write_csv(pd.DataFrame({"file": [name], "row": [1]}), tmp_path / "pairs.csv")
    write_json(tmp_path / "meta.json", {"files": [name]})
    assert b"lesion_\xe9t\xe9.jpg" in (tmp_path / "pairs.csv").read_bytes()
    assert read_json(tmp_path / "meta.json")["files"] == [name]


def test_a_truncated_json_file_is_named(tmp_path):
    path = tmp_path / "seed0.json"
    write_json(path, {"auc_macro": 0.5, "test_scores": [[0.1, 0.9]]})
    path.write_text(path.read_text()[:20])
    with pytest.raises(UnreadableFile, match="seed0.json is not a complete JSON file"):
        read_json(path)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table2.csv"
    write_text(target, "complete\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table2.csv"]
