"""Why does a source transfer? Source-target similarity and source size against the gain.

Similarity: the Fréchet distance between the source network's features of source images and
of target images (the feature layer of `extract`), as in FID; smaller means the target looks
more like the source to that network. Both sides are seeded, class-stratified random samples
of the same size (the distance depends on the sample size and on which classes are in it),
projected on their pooled principal components, fewer than half the sample size (a 4096-d
covariance from 1,000 images is singular). Gains are the mean AUC over seeds minus No
transfer's, for FT and FE. The rank (Spearman) correlation over (source, target) pairs, pooled
and within each source, says whether closer sources help more; with few pairs it is a hint,
not a test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.stats import spearmanr

from .config import NO_SOURCE
from .io import read_csv, read_json, write_csv
from .reporting import add_source_target_legend, save_figure, source_colour, target_markers
from .runs import no_transfer_means, read_runs, runs_frame

# each gain: the method's seed-mean AUC minus No transfer's (fine-tuned from scratch)
GAIN_LABEL = "AUC gain over No transfer\n(means over seeds)"
IMAGENET_IMAGES_PER_CLASS = 1_281_167 / 1000  # ILSVRC-2012 train set
SOURCE_SAMPLE = 1000  # source images whose features pretrain keeps for the similarity
MAX_COMPONENTS = 64
PAIR_KEYS = (
    "source", "target", "source_features", "source_info", "target_features", "target_meta"
)  # fmt: skip


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted positions of a random sample of `n` (at most all) with each class in proportion
    (largest remainders), the same for the same seed."""
    labels = np.asarray(labels)
    n = min(n, len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
        take[k] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, int)


def sample_distance(
    source: np.ndarray,
    source_labels: np.ndarray,
    target: np.ndarray,
    target_labels: np.ndarray,
    seed: int = 0,
) -> tuple[float, int, int]:
    """Fréchet distance of equal-size stratified samples of both sides on their pooled
    principal components; returns (distance, sample size, components)."""
    n = min(len(source), len(target), SOURCE_SAMPLE)
    a = np.asarray(source[stratified_sample(source_labels, n, seed)], np.float64)
    b = np.asarray(target[stratified_sample(target_labels, n, seed)], np.float64)
    pooled = np.concatenate([a, b])
    centre = pooled.mean(axis=0)
    components = max(1, min(MAX_COMPONENTS, pooled.shape[1], n // 2 - 1))
    _, _, vt = np.linalg.svd(pooled - centre, full_matrices=False)
    basis = vt[:components].T
    return frechet_distance((a - centre) @ basis, (b - centre) @ basis), n, components


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
    baseline = no_transfer_means(summary, ft)
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
    frame: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    path: str,
    source_order: list[str] | None = None,
    log_x: bool = False,
    ylabel: str = GAIN_LABEL,
) -> None:
    save_figure(gain_scatter(frame, x, xlabel, title, source_order, log_x, ylabel), path)


def gain_scatter(
    frame: pd.DataFrame,
    x: str,
    xlabel: str,
    title: str,
    source_order: list[str] | None = None,
    log_x: bool = False,
    ylabel: str = GAIN_LABEL,
):
    """FT and FE gains over No transfer against `x`, a point per source (colour) and target
    (shape), the legend beside the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(frame.source))
    order = source_order or sources
    markers = target_markers(list(dict.fromkeys(frame.target)) if "target" in frame else [None])
    # points coloured by source (its colour of every figure), shaped by target: text labels
    # beside a dozen points overlapped
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4), sharey=True)
    for ax, kind in zip(axes, ("ft_gain", "fe_gain"), strict=True):
        rho, p = rank_correlation(frame[x], frame[kind])
        ax.axhline(0, color="grey", lw=0.8)
        for _, row in frame.iterrows():
            target = row.target if "target" in row else None
            ax.scatter(row[x], row[kind], color=source_colour(order, row.source),
                       marker=markers.get(target, "o"), s=36)  # fmt: skip
        if log_x:
            ax.set_xscale("log")
        n = int((frame[x].notna() & frame[kind].notna()).sum())
        statistic = (f"Spearman ρ={rho:.2f}, p={p:.2f}" if np.isfinite(rho)
                     else f"{n} point(s): too few for a rank correlation")  # fmt: skip
        ax.set(xlabel=xlabel, title=f"{kind[:2].upper()} gain ({statistic})")
    axes[0].set_ylabel(ylabel)
    add_source_target_legend(fig, order, sources, markers, x=0.86)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.85, 1))  # the right seventh holds the legend
    return fig


def similarity_table(pairs: list[dict[str, str]], gain_table: pd.DataFrame) -> pd.DataFrame:
    """pairs: source, target and the paths of PAIR_KEYS (features .npy, source.json, meta)."""
    rows = []
    for pair in pairs:
        distance, n, components = sample_distance(
            np.load(pair["source_features"], mmap_mode="r"),
            np.asarray(read_json(pair["source_info"])["feature_sample_labels"]),
            np.load(pair["target_features"], mmap_mode="r"),
            np.asarray(read_json(pair["target_meta"])["labels"]),
        )
        rows.append(
            {
                "source": pair["source"],
                "target": pair["target"],
                "frechet_distance": distance,
                "sample_size": n,
                "components": components,
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
    fe_method: str,
    ft_method: str,
    table_csv: str,
    pairs: list[dict[str, str]],
    source_info_files: dict[str, str | None],
    outputs: dict[str, str],
    sources: list[str] | None = None,
) -> None:
    """`sources`: the grid's, in its order, which gives each source its colour."""
    summary = read_csv(table_csv)
    gain_table = gains(summary, fe_method, ft_method)
    similarity = similarity_table(pairs, gain_table)
    write_csv(similarity, outputs["similarity_csv"])
    _scatter(
        similarity,
        "frechet_distance",
        "Fréchet distance, source vs target features",
        "Closer sources (left) should help more if similarity drives transfer",
        outputs["similarity_png"],
        sources,
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
        sources,
        log_x=True,
        ylabel="AUC gain over No transfer,\nmean over the source's targets of seed means",
    )
    write_csv(correlation_table(similarity, per_class), outputs["correlations"])


def correlation_table(similarity: pd.DataFrame, per_class: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations of both analyses, pooled over all points and, for similarity,
    within each source (does a source help the targets that look like it more?)."""
    scopes = [("similarity", "pooled", similarity, "frechet_distance")]
    scopes += [
        ("similarity", f"within {source}", part, "frechet_distance")
        for source, part in similarity.groupby("source")
    ]
    scopes.append(("data_per_class", "pooled", per_class, "train_images_per_class"))
    rows = []
    for name, scope, frame, x in scopes:
        for kind in ("ft_gain", "fe_gain"):
            rho, p = rank_correlation(frame[x], frame[kind])
            n_points = int((frame[x].notna() & frame[kind].notna()).sum())
            rows.append(
                {
                    "analysis": name,
                    "scope": scope,
                    "x": x,
                    "gain": kind,
                    "spearman_rho": rho,
                    "p_value": p,
                    "n_points": n_points,
                    "note": "" if n_points >= 3 else "fewer than 3 points: no correlation",
                }
            )
    return pd.DataFrame(rows)


def learning_curve_table(run_files: list[str]) -> pd.DataFrame:
    frame = runs_frame(read_runs(run_files))
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
    table = learning_curve_table(run_files)
    write_csv(table, csv_path)
    save_figure(learning_curve_plot(table), png_path)


def learning_curve_plot(table: pd.DataFrame):
    """AUC against the fraction of the target's training set, a panel per target: if
    transfer helps small datasets most, transfer lines sit highest on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        # a handful of fractions: a linear axis with a tick at each (a log axis labelled
        # them 3x10^-1)
        ax.set_xticks(sorted(part.fraction.unique()))
        ax.set_xlim(0, 1.05)
        ax.set(title=target, xlabel="fraction of the training split",
               ylabel="mean AUC over seeds (error bars: sd)")  # fmt: skip
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig
