"""The grid as files, without Snakemake: planned runs, paths built and parsed, each job's
inputs, the adaptive selection and the default target, on the small test config."""

import pytest

from medtransfer.config import parse_method
from medtransfer.grid import (
    FINETUNED,
    RUN,
    RUN_FRACTION,
    Grid,
    PlannedRun,
    parse_path,
)

from .conftest import small_config


def small_grid(chosen=None, **overrides) -> Grid:
    config = small_config(**overrides)
    archs = [e if isinstance(e, str) else e["name"] for e in config["architectures"]]
    return Grid(config, {a: list(config["sources"]) for a in archs}, "/data", chosen)


def test_a_path_parses_back_into_its_wildcards():
    names = {"arch": "vgg16", "target": "isic", "source": "none", "method": "fe-svm", "seed": "3"}
    path = RUN.format(**names)
    assert parse_path(RUN, path) == names
    assert parse_path(RUN, f"/somewhere/else/{path}") == names
    with pytest.raises(ValueError, match="not a path of the form"):
        parse_path(RUN, "results/vgg16/runs/isic/none/seed3.json")


def test_the_fine_tuned_folder_of_a_run_parses_back():
    run = PlannedRun("blood", "natural", parse_method("ft-last-svm"), 1, "resnet50")
    names = parse_path(f"{FINETUNED}cka.csv", f"{run.finetune_dir()}cka.csv")
    assert names == {
        "arch": "resnet50",
        "target": "blood",
        "source": "natural",
        "variant": "last",
        "seed": "1",
    }


def test_the_small_grid_plans_every_cell_once():
    grid = small_grid()
    # 2 targets x 2 sources x 2 methods x 2 seeds; natural is not a target's own data
    assert len(grid.runs) == 16
    assert len(set(grid.runs)) == 16
    assert grid.audited_tasks == ["blood", "isic", "natural"]
    assert grid.overlap_pairs() == [("natural", "blood"), ("natural", "isic")]


def test_score_inputs_follow_the_method():
    grid = small_grid()
    fe = grid.score_inputs("vgg16", "isic", "natural", "fe-svm", "0")
    assert fe["features"] == "results/vgg16/features/isic/natural.npy"
    assert fe["features_info"] == "results/vgg16/features/isic/natural.json"
    assert fe["overlap"] == "results/audit/overlap/natural/isic.json"
    assert fe["split"] == "results/splits/isic/seed0.json"
    assert fe["images"] == "results/prepared/isic_archive/32px/images.npy"
    ft = grid.score_inputs("vgg16", "isic", "none", "ft-svm", "1", "0.5")
    assert ft["split"] == "results/splits/isic/seed1_frac0.5.json"
    assert ft["training"] == "results/vgg16/finetune/isic/none/all/seed1_frac0.5/training.json"
    assert "overlap" not in ft  # an untrained network saw no images


def test_sources_load_what_they_are():
    grid = small_grid(architectures=["vgg16", "efficientnet_lite0"])
    assert grid.source_model("vgg16", "none") == []
    assert grid.source_model("vgg16", "natural") == "results/vgg16/models/natural/model.keras"
    assert grid.source_model("vgg16", "imagenet").endswith("imagenet/weights_32px.h5")
    assert grid.source_model("efficientnet_lite0", "imagenet").endswith("weights_32px.pth")


def test_the_learning_curve_pairs_each_fraction_with_its_full_run():
    grid = small_grid()
    files = grid.curve_files("vgg16")
    fractions = [f for f in files if "_frac" in f]
    assert fractions == [
        RUN_FRACTION.format(
            arch="vgg16", target="isic", source="none", method="ft-svm", seed=s, fraction="0.5"
        )
        for s in (0, 1)
    ]
    assert sorted(set(files) - set(fractions)) == [f.replace("_frac0.5", "") for f in fractions]


def test_the_adaptive_grid_fine_tunes_only_the_chosen_sources():
    asked = []

    def chosen(arch, target, seed):
        asked.append((arch, target, seed))
        return []  # no transfer source chosen: only No transfer is fine-tuned

    grid = small_grid(chosen, adaptive={"top_k": 1})
    kept = grid.runs_of("vgg16")
    assert not [r for r in kept if r.method.kind == "ft" and r.source == "natural"]
    assert [r for r in kept if r.method.kind == "fe" and r.source == "natural"]
    assert sorted(set(asked)) == [("vgg16", t, s) for t in ("blood", "isic") for s in (0, 1)]
    assert grid.adaptive == {"estimator": "logme", "top_k": 1}
    assert "results/vgg16/transferability/adaptive.md" in grid.final_outputs()
    assert not [p for p in grid.final_outputs() if "/runs/" in p]  # known after the choice


def test_the_default_target_holds_every_report():
    outputs = small_grid().final_outputs()
    for path in (
        "results/audit/summary.md",
        "results/table2.csv",
        "results/vgg16/figure3.png",
        "results/vgg16/isic/roc.png",
        "results/vgg16/transferability/tau.md",
        "results/vgg16/probes/blood/cka.png",
        "results/vgg16/analysis/learning_curves.png",
        "results/vgg16/analysis/similarity.png",
        "results/vgg16/filters/none/kernels.png",
        "results/vgg16/runs/blood/natural/fe-svm/seed1.json",
    ):
        assert path in outputs, path
    assert not [p for p in outputs if p.startswith("results/architectures")]  # one network


def test_a_second_architecture_adds_the_comparison_and_its_own_size():
    grid = small_grid(
        architectures=["vgg16", {"name": "resnet50", "targets": ["blood"], "image_size": 64}]
    )
    assert "results/architectures.png" in grid.final_outputs()
    assert grid.size_of("resnet50") == 64
    assert grid.arch_task_data("resnet50", "blood")["meta"] == "results/tasks/blood/64px/meta.json"
    assert {r.target for r in grid.runs if r.arch == "resnet50"} == {"blood"}
    assert grid.training_params("finetune", "resnet50")["width"] == 1.0  # VGG16's knob only
    assert grid.filter_layers("vgg16") == grid.config["report"]["filter_layers"]


@pytest.mark.parametrize(
    "argv, only_built",
    [
        (["snakemake", "--report"], True),
        (["snakemake", "--report", "report.zip"], True),
        (["snakemake", "--report=report.html"], True),  # missed by a plain "--report" in argv
        # runs the grid, then reports: a filter to what exists would have run nothing new
        (["snakemake", "--report", "r.html", "--report-after-run", "--cores", "2"], False),
        (["snakemake", "--cores", "2", "results/table2.csv"], False),
    ],
)
def test_only_a_report_without_a_run_narrows_the_default_target(argv, only_built):
    from medtransfer.grid import describes_only

    assert describes_only(argv) is only_built
