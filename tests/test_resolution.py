"""Image size as a grid axis: how networks at several sizes are named and planned, the
resolution table's arithmetic, and a real two-size grid."""

import json
import shutil

import pandas as pd
import pytest

from medtransfer.architectures import architecture
from medtransfer.config import ConfigError, architecture_grids, check_config
from medtransfer.resolution import resolution_means, resolution_table

from .conftest import small_config, snakemake, write_config


def test_an_architecture_keeps_its_name_at_its_first_size_and_is_sized_after():
    config = small_config(image_sizes=[32, 64])
    check_config(config)
    assert config["image_size"] == 32  # the grid's size: the first
    grids = architecture_grids(config)
    assert list(grids) == ["vgg16", "vgg16_64px"]
    assert [g["image_size"] for g in grids.values()] == [32, 64]
    assert {g["architecture"] for g in grids.values()} == {"vgg16"}
    assert architecture("vgg16_64px") is architecture("vgg16")
    assert architecture("efficientnet_lite0_128px").name == "efficientnet_lite0"


def test_an_entry_may_list_the_same_architecture_at_another_size_on_part_of_the_grid():
    config = small_config(
        architectures=["vgg16", {"name": "vgg16", "image_size": 48, "targets": ["blood"]}]
    )
    check_config(config)
    grids = architecture_grids(config)
    assert grids["vgg16_48px"]["targets"] == ["blood"]
    assert grids["vgg16"]["targets"] == ["isic", "blood"]


def test_the_same_architecture_at_the_same_size_twice_is_refused():
    config = small_config(architectures=["vgg16", {"name": "vgg16", "image_sizes": [32]}])
    with pytest.raises(ConfigError, match="vgg16 at 32 px listed more than once"):
        check_config(config)


def test_an_entry_with_both_image_size_and_image_sizes_is_refused():
    """image_sizes would replace the entry's image_size without a word: say so instead."""
    entry = {"name": "vgg16", "image_size": 48, "image_sizes": [64, 96]}
    config = small_config(architectures=["vgg16", entry])
    with pytest.raises(ConfigError, match=r"architectures.vgg16: image_size \(48\) and "
                                          r"image_sizes \(\[64, 96\]\) both given"):  # fmt: skip
        check_config(config)


def frame(rows):
    return pd.DataFrame(rows, columns=["architecture", "target", "source", "method", "seed", "auc"])


def test_the_resolution_means_compare_sizes_over_the_targets_every_size_ran():
    rows = [
        # vgg16 at 32 px on isic and blood; at 64 px on blood only
        ("vgg16", "isic", "natural", "ft-svm", 0, 0.9),
        ("vgg16", "blood", "natural", "ft-svm", 0, 0.6),
        ("vgg16", "blood", "natural", "ft-svm", 1, 0.8),
        ("vgg16", "blood", "none", "ft-svm", 0, 0.5),
        ("vgg16", "blood", "none", "fe-svm", 0, 0.4),
        ("vgg16_64px", "blood", "natural", "ft-svm", 0, 0.75),
        ("vgg16_64px", "blood", "none", "ft-svm", 0, 0.55),
        ("resnet50", "blood", "natural", "ft-svm", 0, 0.7),  # one size: not compared
    ]
    networks = {
        "vgg16": {"architecture": "vgg16", "image_size": 32},
        "vgg16_64px": {"architecture": "vgg16", "image_size": 64},
        "resnet50": {"architecture": "resnet50", "image_size": 32},
    }
    data = resolution_means(frame(rows), networks, "fe-svm", "ft-svm")
    natural = data[data.source == "natural"].set_index("image_size")
    assert natural.mean_auc.to_dict() == pytest.approx({32: 0.7, 64: 0.75})  # blood only
    assert set(natural.n_targets) == {1} and set(data.architecture) == {"vgg16"}
    assert not len(data[(data.source == "none") & (data.kind == "FE")])
    table = resolution_table(data, ["none", "natural"])
    assert list(table.columns) == ["Architecture", "Source", "Method", "32 px", "64 px"]
    assert table.iloc[0].Source == "No transfer" and table.iloc[1]["64 px"] == "0.750"


@pytest.mark.slow
def test_a_second_size_adds_only_its_own_jobs_and_the_resolution_table(
    small_grid, shared_data, tmp_path
):
    """The small grid with VGG16 at 40 px added on the blood target: the 32-px records are
    not touched (identical numbers at the first size), the 40-px ones are VGG16's at 40 px,
    and the resolution table and figure compare the sizes over blood."""
    workdir = tmp_path / "grid"
    shutil.copytree(small_grid, workdir, symlinks=True)
    first = sorted((workdir / "results/vgg16/runs").rglob("*.json"))
    before = {p: p.read_bytes() for p in first}
    second = {"name": "vgg16", "image_size": 40, "targets": ["blood"], "sources": ["none"]}
    config = write_config(workdir / "two.yaml", shared_data, architectures=["vgg16", second])
    result = snakemake(workdir, config, "--cores", "2", timeout=900)
    assert {p: p.read_bytes() for p in first} == before, "a 32-px run was redone"
    assert "rule finetune:" in result.stdout + result.stderr
    runs = sorted((workdir / "results/vgg16_40px/runs/blood/none").rglob("seed*.json"))
    assert len(runs) == 4  # (fe-svm, ft-svm) x 2 seeds
    for path in runs:
        run = json.loads(path.read_text())
        assert run["architecture"] == "vgg16_40px" and run["image_size"] == 40
    data = pd.read_csv(workdir / "results/resolution.csv")
    assert set(data.image_size) == {32, 40} and set(data.targets) == {"blood"}
    assert (workdir / "results/resolution.png").stat().st_size > 10_000
    assert "| vgg16 (40 px) |" in (workdir / "results/architectures.md").read_text()
