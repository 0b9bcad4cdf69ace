"""Why does a source transfer? Source-target similarity and source size against the gain.

Similarity: the Fréchet distance between the source network's features of source images and
of target images (the feature layer of `extract`), as in FID; smaller means the target looks
more like the source to that network. Gains are the mean AUC over seeds minus No transfer's,
for FT and FE. The rank (Spearman) correlation over (source, target) pairs says whether
closer sources help more; with few pairs it is a hint, not a test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.stats import spearmanr

from .config import NO_SOURCE
from .io import atomic_path, read_json
from .reporting import write_csv

IMAGENET_IMAGES_PER_CLASS = 1_281_167 / 1000  # ILSVRC-2012 train set


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature samples."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    cov_b = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


def gains(summary: pd.DataFrame, fe: str, ft: str) -> pd.DataFrame:
    """Mean AUC minus No transfer's (source none with the FT method), per (target, source)."""
    baseline = summary[(summary.source == NO_SOURCE) & (summary.method == ft)]
    baseline = baseline.set_index("target")["mean"]
    rows = []
    for (target, source), part in summary.groupby(["target", "source"]):
        if source == NO_SOURCE or target not in baseline.index:
            continue
        means = part.set_index("method")["mean"]
        rows.append(
            {
                "target": target,
                "source": source,
                "ft_gain": means.get(ft, np.nan) - baseline[target],
                "fe_gain": means.get(fe, np.nan) - baseline[target],
            }
        )
    return pd.DataFrame(rows)


def rank_correlation(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    ok = x.notna() & y.notna()
    if ok.sum() < 3:
        return float("nan"), float("nan")
    result = spearmanr(x[ok], y[ok])
    return float(result.statistic), float(result.pvalue)


def _scatter(
    frame: pd.DataFrame, x: str, xlabel: str, title: str, path: str, log_x: bool = False
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("ft_gain", "fe_gain"), strict=True):
        rho, p = rank_correlation(frame[x], frame[kind])
        ax.axhline(0, color="grey", lw=0.8)
        ax.scatter(frame[x], frame[kind])
        for _, row in frame.iterrows():
            ax.annotate(
                f"{row.source}→{row.target}" if "target" in row else row.source,
                (row[x], row[kind]),
                fontsize=6,
            )
        if log_x:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, title=f"{kind[:2].upper()} gain (Spearman ρ={rho:.2f}, p={p:.2f})")
    axes[0].set_ylabel("AUC gain over No transfer")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def similarity_table(
    pairs: list[dict[str, str]], gain_table: pd.DataFrame, max_images: int = 1000
) -> pd.DataFrame:
    """pairs: source, target, source_features, target_features (paths of .npy files)."""
    rows = []
    for pair in pairs:
        source_features = np.load(pair["source_features"], mmap_mode="r")[:max_images]
        target_features = np.load(pair["target_features"], mmap_mode="r")[:max_images]
        rows.append(
            {
                "source": pair["source"],
                "target": pair["target"],
                "frechet_distance": frechet_distance(source_features, target_features),
            }
        )
    table = pd.DataFrame(rows)
    return table.merge(gain_table, on=["source", "target"], how="left")


def data_per_class_table(
    source_infos: dict[str, dict[str, Any]], gain_table: pd.DataFrame
) -> pd.DataFrame:
    """Training images per class of each source beside its gains averaged over targets."""
    rows = []
    for source, info in source_infos.items():
        per_class = (
            IMAGENET_IMAGES_PER_CLASS if info is None else info["n_train"] / len(info["classes"])
        )
        mine = gain_table[gain_table.source == source]
        rows.append(
            {
                "source": source,
                "train_images_per_class": per_class,
                "ft_gain": mine.ft_gain.mean(),
                "fe_gain": mine.fe_gain.mean(),
                "n_targets": len(mine),
            }
        )
    return pd.DataFrame(rows)


def write_analysis(
    config: dict[str, Any],
    table_csv: str,
    pairs: list[dict[str, str]],
    source_info_files: dict[str, str | None],
    outputs: dict[str, str],
) -> None:
    summary = pd.read_csv(table_csv)
    gain_table = gains(summary, config["report"]["fe_method"], config["report"]["ft_method"])
    similarity = similarity_table(pairs, gain_table)
    write_csv(similarity, outputs["similarity_csv"])
    _scatter(
        similarity,
        "frechet_distance",
        "Fréchet distance, source vs target features",
        "Closer sources (left) should help more if similarity drives transfer",
        outputs["similarity_png"],
    )
    infos = {s: (read_json(p) if p else None) for s, p in source_info_files.items()}
    per_class = data_per_class_table(infos, gain_table)
    write_csv(per_class, outputs["data_csv"])
    _scatter(
        per_class,
        "train_images_per_class",
        "source training images per class",
        "Does transfer follow the amount of source data per class?",
        outputs["data_png"],
        log_x=True,
    )
    rows = []
    for name, frame, x in (
        ("similarity", similarity, "frechet_distance"),
        ("data_per_class", per_class, "train_images_per_class"),
    ):
        for kind in ("ft_gain", "fe_gain"):
            rho, p = rank_correlation(frame[x], frame[kind])
            rows.append(
                {
                    "analysis": name,
                    "x": x,
                    "gain": kind,
                    "spearman_rho": rho,
                    "p_value": p,
                    "n_points": int((frame[x].notna() & frame[kind].notna()).sum()),
                }
            )
    write_csv(pd.DataFrame(rows), outputs["correlations"])


def learning_curve_table(run_files: list[str]) -> pd.DataFrame:
    rows = []
    for path in run_files:
        run = read_json(path)
        rows.append(
            {
                "target": run["target"],
                "source": run["source"],
                "method": run["method"],
                "fraction": run.get("train_fraction", 1.0),
                "seed": run["seed"],
                "n_train": run["sizes"]["train"],
                "auc": run["auc_macro"],
            }
        )
    frame = pd.DataFrame(rows)
    keys = ["target", "source", "method", "fraction"]
    return (
        frame.groupby(keys)
        .agg(
            mean_auc=("auc", "mean"),
            std_auc=("auc", "std"),
            n_train=("n_train", "mean"),
            n_seeds=("seed", "count"),
        )
        .reset_index()
    )


def write_learning_curves(run_files: list[str], csv_path: str, png_path: str) -> None:
    """AUC against the fraction of the target's training set, a panel per target: if
    transfer helps small datasets most, transfer lines sit highest on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = learning_curve_table(run_files)
    write_csv(table, csv_path)
    targets = sorted(table.target.unique())
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        part = table[table.target == target]
        for (source, method), curve in part.groupby(["source", "method"]):
            curve = curve.sort_values("fraction")
            ax.errorbar(
                curve.fraction,
                curve.mean_auc,
                yerr=curve.std_auc.fillna(0),
                marker="o",
                capsize=3,
                label=f"{source} / {method}",
            )
        ax.set_xscale("log")
        ax.set(title=target, xlabel="fraction of the training split", ylabel="mean AUC")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
