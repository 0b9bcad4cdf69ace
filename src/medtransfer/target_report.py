"""Per-target figures and tables: ROC curves, training curves, confusion matrices, Patel's
per-class F1 table and a classification report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .io import read_csv, write_csv, write_text
from .reporting import save_figure
from .runs import RunRecord, predictions, read_runs
from .tables import to_markdown


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, size: float = 3.2):
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def first_seed_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """One run per (source, method): the lowest seed, so curves come from one model each."""
    chosen: dict[tuple[str, str], RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        chosen.setdefault((run.source, run.method), run)
    return list(chosen.values())


def roc_figure(runs: list[RunRecord], path: str) -> None:
    save_figure(roc_plot(runs), path)


def roc_plot(runs: list[RunRecord]):
    """ROC curves per class and macro of each (source, method)'s lowest seed; the legend in
    the lower right, where a curve above chance never goes."""
    from sklearn.metrics import roc_curve

    shown = first_seed_runs(runs)
    fig, axes = _grid(len(shown))
    for ax, run in zip(axes, shown, strict=False):
        labels, scores = np.asarray(run.test_labels), np.asarray(run.test_scores)
        grid = np.linspace(0, 1, 101)
        tprs = []
        for k, name in enumerate(run.classes):
            if 0 < (labels == k).sum() < len(labels):
                fpr, tpr, _ = roc_curve(labels == k, scores[:, k])
                tprs.append(np.interp(grid, fpr, tpr))
                ax.plot(fpr, tpr, lw=1, label=f"{name} ({run.auc_per_class[name]:.2f})")
        if tprs:
            ax.plot(grid, np.mean(tprs, axis=0), "k", lw=2, label=f"macro ({run.auc_macro:.2f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(f"{run.label}, seed {run.seed}", fontsize=8)
        ax.set_xlabel("false positive rate", fontsize=7)
        ax.set_ylabel("true positive rate", fontsize=7)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(runs: list[RunRecord], path: str) -> None:
    save_figure(confusion_plot(runs), path)


def confusion_plot(runs: list[RunRecord]):
    """Confusion matrices summed over seeds, one per (source, method)."""
    summed: dict[str, np.ndarray] = {}
    classes: list[str] = []
    for run in runs:
        matrix = np.asarray(run.confusion_matrix)
        summed[run.label] = summed.get(run.label, 0) + matrix
        classes = run.classes
    fig, axes = _grid(len(summed))
    for ax, (name, matrix) in zip(axes, sorted(summed.items()), strict=False):
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=6)
        ax.set_yticks(range(len(classes)), classes, fontsize=6)
        ax.set_title(f"{name} (all seeds)", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    fig.tight_layout()
    return fig


def training_figure(histories: dict[str, pd.DataFrame], path: str) -> None:
    save_figure(training_plot(histories), path)


def training_plot(histories: dict[str, pd.DataFrame]):
    """Loss and accuracy per epoch, train and val, of every fine-tuning run."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    # tab10 repeats after 10 runs: one colour per run from a wider map, style per source
    colours = plt.get_cmap("tab20").colors if len(histories) > 10 else plt.get_cmap("tab10").colors
    for index, (name, history) in enumerate(sorted(histories.items())):
        colour = colours[index % len(colours)]
        line = loss_ax.plot(history.epoch, history.loss, lw=1, label=name, color=colour)[0]
        loss_ax.plot(history.epoch, history.val_loss, "--", lw=1, color=line.get_color())
        acc_ax.plot(history.epoch, history.accuracy, lw=1, color=line.get_color())
        acc_ax.plot(history.epoch, history.val_accuracy, "--", lw=1, color=line.get_color())
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: val)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (solid: train, dashed: val)")
    if histories:
        handles, labels = loss_ax.get_legend_handles_labels()
        columns = 1 + len(histories) // 20
        acc_ax.legend(handles, labels, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1),
                      frameon=False, ncol=columns)  # fmt: skip
    fig.tight_layout()
    return fig


def f1_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Patel's layout: a row per (source, method), per-class F1 then micro and macro, each the
    mean over seeds."""
    rows = []
    for run in runs:
        rows.append(
            {
                "source": run.source,
                "method": run.method,
                "seed": run.seed,
                **run.f1_per_class,
                "micro": run.f1_micro,
                "macro": run.f1_macro,
            }
        )
    frame = pd.DataFrame(rows)
    value_columns = [c for c in frame.columns if c not in ("source", "method", "seed")]
    table = frame.groupby(["source", "method"], sort=True)[value_columns].mean().reset_index()
    table["n_seeds"] = frame.groupby(["source", "method"], sort=True).size().to_numpy()
    return table


def _macro(values: dict[str, float] | None) -> float:
    return float(np.mean(list(values.values()))) if values else np.nan


def clinical_table(runs: list[RunRecord]) -> pd.DataFrame:
    """A row per (source, method), each the mean over seeds: macro AUC, balanced accuracy,
    macro precision and recall, macro sensitivity at 90 % and 95 % specificity, and, where
    the scores are probabilities, expected calibration error and Brier score (blank for
    margins). Records scored before these metrics existed give blanks."""
    rows = []
    for run in runs:
        extra = run.provenance
        sensitivity = extra.get("sensitivity_at_specificity") or {}
        rows.append(
            {
                "source": run.source,
                "method": run.method,
                "auc_macro": run.auc_macro,
                "balanced_accuracy": extra.get("balanced_accuracy", np.nan),
                "precision_macro": _macro(extra.get("precision_per_class")),
                "recall_macro": _macro(extra.get("recall_per_class")),
                "sensitivity_at_90_specificity": sensitivity.get("0.90", np.nan),
                "sensitivity_at_95_specificity": sensitivity.get("0.95", np.nan),
                "ece": extra.get("ece", np.nan),
                "brier": extra.get("brier", np.nan),
            }
        )
    frame = pd.DataFrame(rows).astype({"ece": float, "brier": float})
    value_columns = [c for c in frame.columns if c not in ("source", "method")]
    grouped = frame.groupby(["source", "method"], sort=True)
    table = grouped[value_columns].mean().reset_index()
    table["n_seeds"] = grouped.size().to_numpy()
    return table


def classification_report_text(runs: list[RunRecord]) -> str:
    """scikit-learn's classification report per (source, method), test sets of all seeds
    pooled (predictions are each run's own argmax, so pooling is fair)."""
    from sklearn.metrics import classification_report

    pooled: dict[str, tuple[list, list, list]] = {}
    for run in sorted(runs, key=lambda r: (r.label, r.seed)):
        truth, predicted, classes = pooled.setdefault(run.label, ([], [], run.classes))
        truth += run.test_labels
        predicted += predictions(run).tolist()
    parts = []
    for name, (truth, predicted, classes) in pooled.items():
        report = classification_report(
            truth,
            predicted,
            labels=list(range(len(classes))),
            target_names=classes,
            digits=3,
            zero_division=0,
        )
        parts.append(f"== {name} (all seeds pooled)\n{report}")
    return "\n".join(parts)


def write_target_report(
    run_files: list[str], history_files: list[str], outputs: dict[str, str]
) -> None:
    runs = read_runs(run_files)
    roc_figure(runs, outputs["roc"])
    confusion_figure(runs, outputs["confusion"])
    histories = {"/".join(path.split("/")[-4:-1]): read_csv(path) for path in history_files}
    training_figure(histories, outputs["training"])
    table = f1_table(runs)
    write_csv(table, outputs["f1_csv"])
    write_text(outputs["f1_md"], to_markdown(table.round(3)))
    write_text(outputs["classification_report"], classification_report_text(runs))
    clinical = clinical_table(runs)
    write_csv(clinical, outputs["metrics_csv"])
    note = (
        "Means over seeds. Sensitivity at a specificity: each class against the rest, the "
        "highest sensitivity of a threshold on its test scores that keeps the specificity, "
        "averaged over classes. ECE (15 equal-width bins of the top-class probability) and "
        "Brier score (Σ over classes of (p − y)², mean over images) only where the scores "
        "are probabilities (the network's softmax, MLPs, trees): an SVM's margins are not, "
        "and are left blank rather than squashed into numbers that look like probabilities."
    )
    write_text(outputs["metrics_md"], to_markdown(clinical.round(3)) + f"\n{note}\n")
