"""The run record and Table II's layout on small hand-made runs (no Snakemake)."""

import json

import pandas as pd
import pytest

from medtransfer.reporting import empty_table_note, layout, summarise
from medtransfer.runs import (
    RunFileError,
    RunRecord,
    group_runs,
    no_transfer_means,
    read_runs,
    runs_frame,
    write_run,
)


def record(target="isic", source="none", method="ft-svm", seed=0, auc=0.7, **extra):
    return {
        "target": target,
        "source": source,
        "method": method,
        "seed": seed,
        "classes": ["a", "b"],
        "auc_macro": auc,
        "auc_per_class": {"a": auc, "b": auc},
        "accuracy": 0.6,
        "kappa": 0.2,
        "kappa_quadratic": None,
        "f1_per_class": {"a": 0.5, "b": 0.6},
        "f1_micro": 0.6,
        "f1_macro": 0.55,
        "confusion_matrix": [[1, 1], [0, 2]],
        "sizes": {"train": 10, "val": 2, "test": 4},
        "test_labels": [0, 0, 1, 1],
        "test_scores": [[1, 0], [0, 1], [0, 1], [0, 1]],
        **extra,
    }


def test_a_run_file_reads_back_as_written(tmp_path):
    data = record(auc=0.75, versions={"keras": "3"}, epochs_run=4)
    write_run(tmp_path / "r.json", RunRecord.from_json(data))
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == {**data, "train_fraction": 1.0, "architecture": "vgg16", "leakage": {}}
    (run,) = read_runs([tmp_path / "r.json"])
    assert run.provenance == {"versions": {"keras": "3"}, "epochs_run": 4}
    assert run.file == str(tmp_path / "r.json") and run.key == ("isic", "none", "ft-svm")


def test_a_file_that_is_no_run_is_named_with_what_it_lacks(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({k: v for k, v in record().items() if k != "kappa"}))
    with pytest.raises(RunFileError, match=r"old.json: not a run file .*no kappa"):
        read_runs([path])


def test_runs_group_by_target_source_method_in_seed_order():
    runs = [
        RunRecord.from_json(record(seed=s, source=src)) for s in (2, 0, 1) for src in ("a", "b")
    ]
    grouped = group_runs(runs)
    assert list(grouped) == [("isic", "a", "ft-svm"), ("isic", "b", "ft-svm")]
    assert [r.seed for r in grouped[("isic", "a", "ft-svm")]] == [0, 1, 2]


CONFIG = {
    "targets": ["isic_a", "isic_b", "blood"],
    "tasks": {t: {"dataset": t} for t in ("isic_a", "isic_b", "blood", "natural")},
    "report": {
        "fe_method": "fe-svm",
        "ft_method": "ft-svm",
        "groups": {"ISIC": ["isic_a", "isic_b"]},
    },
}
AUCS = {  # (target, source, method) -> AUC of seeds 0 and 1
    ("isic_a", "none", "ft-svm"): (0.60, 0.62),
    ("isic_a", "natural", "fe-svm"): (0.70, 0.74),
    ("isic_a", "natural", "ft-svm"): (0.80, 0.78),
    ("isic_b", "none", "ft-svm"): (0.50, 0.54),
    ("isic_b", "natural", "fe-svm"): (0.66, 0.60),
    ("isic_b", "natural", "ft-svm"): (0.70, 0.70),
    ("blood", "none", "ft-svm"): (0.55, 0.55),
    ("blood", "natural", "fe-svm"): (0.65, 0.67),
    ("blood", "natural", "ft-svm"): (0.60, 0.64),
}


def summary_of_aucs():
    runs = [
        RunRecord.from_json(record(t, s, m, seed, auc))
        for (t, s, m), values in AUCS.items()
        for seed, auc in enumerate(values)
    ]
    return summarise(runs_frame(runs))


def test_table2_layout_with_a_mean_group_row_and_differences():
    table = layout(CONFIG, summary_of_aucs(), ["none", "natural"]).set_index("Target")
    assert list(table.index) == ["isic_a", "isic_b", "Mean ISIC", "Differences", "blood",
                                 "Differences"]  # fmt: skip
    assert list(table.columns) == ["No transfer", "natural FE", "natural FT"]
    assert table.loc["isic_a", "natural FT"] == "0.790 ± 0.010"
    # Mean ISIC: the mean of the targets' means and of their maximum deviations
    assert table.loc["Mean ISIC", "natural FE"] == f"{(0.72 + 0.63) / 2:.3f} ± {0.025:.3f}"
    differences = table.iloc[3]
    assert differences["natural FT"] == f"{(0.79 + 0.70) / 2 - (0.72 + 0.63) / 2:+.3f}"
    assert table.iloc[5]["natural FT"] == f"{0.62 - 0.66:+.3f}"


def test_a_table_without_a_value_says_why():
    """Only the untrained network's features (none + fe-svm): no column of Table II has runs."""
    runs = [RunRecord.from_json(record(method="fe-svm", seed=s)) for s in (0, 1)]
    table = layout(CONFIG, summarise(runs_frame(runs)), ["none"])
    assert "No cell of this table has runs" in empty_table_note(table, CONFIG["report"])
    full = layout(CONFIG, summary_of_aucs(), ["none", "natural"])
    assert empty_table_note(full, CONFIG["report"]) == ""


def test_source_of_the_targets_data_is_na():
    config = {**CONFIG, "tasks": {**CONFIG["tasks"], "natural": {"dataset": "blood"}}}
    table = layout(config, summary_of_aucs(), ["none", "natural"]).set_index("Target")
    assert table.loc["blood", "natural FE"] == "N.A."


def test_no_transfer_baseline_is_none_with_the_ft_method():
    means = no_transfer_means(summary_of_aucs(), "ft-svm")
    assert means.to_dict() == pytest.approx({"isic_a": 0.61, "isic_b": 0.52, "blood": 0.55})
    assert isinstance(means, pd.Series)


def run_at(root, data):
    """A run record written where the workflow puts it: results/{arch}/runs/..."""
    path = root / "results/vgg16/runs" / data["target"] / data["source"] / data["method"]
    path.mkdir(parents=True, exist_ok=True)
    path = path / f"seed{data['seed']}.json"
    path.write_text(json.dumps(data))
    return path


def test_a_run_file_copied_to_another_runs_place_is_refused(tmp_path):
    path = run_at(tmp_path, record(auc=0.75, seed=1))
    copy = path.with_name("seed2.json")
    copy.write_text(path.read_text())
    assert read_runs([path])[0].seed == 1
    with pytest.raises(
        RunFileError, match=r"seed2.json: the record says seed 1 but lies at the place of seed 2"
    ):
        read_runs([copy])


def test_an_auc_its_own_scores_do_not_give_is_refused(tmp_path):
    path = run_at(tmp_path, record(auc=0.99))  # its scores give 0.75
    with pytest.raises(
        RunFileError, match=r"auc_macro 0.990000 is not what its own test scores give \(0.750000\)"
    ):
        read_runs([path])


def test_a_truncated_run_file_is_named(tmp_path):
    path = run_at(tmp_path, record(auc=0.75))
    path.write_text(path.read_text()[:200])
    with pytest.raises(RunFileError, match=rf"{path}: cannot be read as a run record"):
        read_runs([path])


def test_nearly_tied_scores_are_flagged_and_mark_the_cell():
    import numpy as np

    from medtransfer.runs import nearly_tied

    margins = np.column_stack([-1 - 1e-12 * np.arange(5), 1 + 1e-12 * np.arange(5)])
    assert nearly_tied(margins) and not nearly_tied(margins * 0 + np.arange(10).reshape(5, 2))
    tied = RunRecord.from_json(record(auc=0.75, scores_nearly_tied=True))
    assert not runs_frame([tied]).converged.iloc[0]


def test_clinical_table_means_seeds_and_leaves_margins_uncalibrated():
    from medtransfer.target_report import clinical_table

    def with_metrics(seed, balanced, ece):
        extra = {"balanced_accuracy": balanced, "precision_per_class": {"a": 0.4, "b": 0.8},
                 "recall_per_class": {"a": 0.5, "b": 0.7},
                 "sensitivity_at_specificity": {"0.90": 0.3, "0.95": 0.2},
                 "ece": ece, "brier": None if ece is None else 0.3}  # fmt: skip
        return RunRecord.from_json(
            record(seed=seed, method="ft-head" if ece else "ft-svm", **extra)
        )

    table = clinical_table([with_metrics(0, 0.6, None), with_metrics(1, 0.8, None),
                            with_metrics(0, 0.7, 0.1), with_metrics(1, 0.7, 0.3)])  # fmt: skip
    svm = table[table.method == "ft-svm"].iloc[0]
    assert svm.balanced_accuracy == pytest.approx(0.7) and svm.n_seeds == 2
    assert svm.precision_macro == pytest.approx(0.6) and pd.isna(svm.ece)
    head = table[table.method == "ft-head"].iloc[0]
    assert head.ece == pytest.approx(0.2) and head.sensitivity_at_95_specificity == 0.2
