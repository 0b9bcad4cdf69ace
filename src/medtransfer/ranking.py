"""Does an estimator rank sources as fine-tuning does? The transferability stage's report
(the estimates themselves: `estimates`; the adaptive grid: `adaptive`; probes: `probes`).

A source's measured gain on a target, per seed, is its AUC minus No transfer's AUC (source
`none` with the FT method, runs.no_transfer_key) on the same seed's split; both the FT and
the FE method's gains are compared. Each estimator's ranking of the sources (`none` left out:
it is the reference) is compared with the mean gain's by Kendall's τ and weighted τ
(top-weighted, scipy's hyperbolic weights). The interval resamples the seeds with
replacement, the same seeds for estimates and gains (a seed's split is shared by both);
resamples in which τ is undefined (all sources tied) are counted, not hidden.

τ's null is exact: the permutation p is the share of all n! orderings of the gains whose
|τ| reaches the observed one (random orderings beyond EXACT_UP_TO sources). With n sources
its smallest value is 2 / n!: with 3 sources τ takes only ±1 and ±⅓ and a perfect ranking
happens by chance with p = 1/3 (two-sided), with 4 the floor is 0.083, so fewer than 5
sources can never show a ranking at 0.05, and the table says so. A pooled row per estimator
averages τ over the targets, with the permutation null of that mean (each target's gains
permuted independently).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import weightedtau

from .config import NO_SOURCE
from .estimates import read_estimates
from .runs import RunRecord

MIN_SOURCES = 3
FEW_SEEDS = 5  # 3 seeds have 10 distinct resamples: an interval of a few values
GAIN_KINDS = ("ft", "fe")
EXACT_UP_TO = 8  # sources: all n! orderings (40,320) for the permutation p; beyond, draws
N_PERMUTATIONS = 20000
POOLED = "pooled"
TAU_COLUMNS = ["target", "estimator", "gain", "n_sources", "n_seeds", "sources", "tau",
               "weighted_tau", "p_permutation", "tau_low", "tau_high", "undefined_resamples",
               "note"]  # fmt: skip


def seed_gains(runs: list[RunRecord], fe_method: str, ft_method: str) -> pd.DataFrame:
    """(target, source, seed, kind, gain): each run's AUC minus No transfer's on its seed."""
    baseline = {
        (r.target, r.seed): r.auc_macro
        for r in runs
        if r.source == NO_SOURCE and r.method == ft_method and r.auc_macro is not None
    }
    kinds = {ft_method: "ft", fe_method: "fe"}
    rows = [
        {
            "target": r.target,
            "source": r.source,
            "seed": r.seed,
            "kind": kinds[r.method],
            "gain": r.auc_macro - baseline[(r.target, r.seed)],
        }
        for r in runs
        if r.source != NO_SOURCE
        and r.method in kinds
        and r.auc_macro is not None
        and (r.target, r.seed) in baseline
    ]
    return pd.DataFrame(rows, columns=["target", "source", "seed", "kind", "gain"])


def _defined(scores: np.ndarray, gains: np.ndarray) -> bool:
    return len(scores) >= MIN_SOURCES and np.ptp(scores) > 0 and np.ptp(gains) > 0


def _tau(scores: np.ndarray, gains: np.ndarray) -> float:
    return float(taus_b(scores, gains)) if _defined(scores, gains) else math.nan


def taus_b(scores: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of each row of `scores` against the same row of `gains` (NaN where a
    row is all tied): SciPy's `kendalltau` in the same arithmetic, bit for bit, without its
    per-call overhead (about 0.7 ms, 8 of the transferability job's 13 s at 1,000
    bootstrap resamples per ranking)."""
    a, b = _pair_signs(scores), _pair_signs(gains)
    untied_a, untied_b = np.count_nonzero(a, axis=-1), np.count_nonzero(b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        taus = (a * b).sum(axis=-1) / np.sqrt(untied_a) / np.sqrt(untied_b)
    return np.where((untied_a > 0) & (untied_b > 0), np.clip(taus, -1.0, 1.0), np.nan)


def _weighted_tau(scores: np.ndarray, gains: np.ndarray) -> float:
    return float(weightedtau(scores, gains).statistic) if _defined(scores, gains) else math.nan


def _pair_signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) over the pairs i < j, along the last axis."""
    i, j = np.triu_indices(values.shape[-1], k=1)
    return np.sign(values[..., i] - values[..., j])


def _orderings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Every ordering of n items (n <= EXACT_UP_TO), else N_PERMUTATIONS random ones."""
    from itertools import permutations

    if n <= EXACT_UP_TO:
        return np.array(list(permutations(range(n))))
    return random_orderings(n, rng)


def random_orderings(n: int, rng: np.random.Generator) -> np.ndarray:
    """N_PERMUTATIONS random orderings of n items, one per row."""
    return rng.permuted(np.tile(np.arange(n), (N_PERMUTATIONS, 1)), axis=1)


def null_taus(scores: np.ndarray, gains: np.ndarray, orderings: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of the scores against each reordering of the gains (ties kept)."""
    a, b = _pair_signs(scores), _pair_signs(gains[orderings])
    scale = math.sqrt(np.count_nonzero(a) * np.count_nonzero(b[0]))
    return (b @ a) / scale if scale else np.full(len(orderings), np.nan)


def permutation_p(scores: np.ndarray, gains: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sided: the share of orderings of the gains whose |τ| reaches the observed |τ|."""
    if not _defined(scores, gains):
        return math.nan
    observed = abs(_tau(scores, gains))
    taus = null_taus(scores, gains, _orderings(len(scores), rng))
    return float(np.mean(np.abs(taus) >= observed - 1e-12))


def smallest_p(n_sources: int) -> float:
    return 2 / math.factorial(n_sources)


def pooled_rows(table: pd.DataFrame, pairs: dict, rng: np.random.Generator) -> list[dict]:
    """Per (estimator, gain kind): the mean τ over targets and its permutation p, each
    target's gains permuted independently (N_PERMUTATIONS joint draws)."""
    rows = []
    for (estimator, kind), part in table.groupby(["estimator", "gain"], sort=True):
        defined = part[np.isfinite(part.tau)]
        row = {
            "target": POOLED, "estimator": estimator, "gain": kind,
            "n_sources": int(defined.n_sources.sum()), "n_seeds": int(part.n_seeds.min()),
            "sources": f"{len(defined)} target(s)", "tau": math.nan, "weighted_tau": math.nan,
            "p_permutation": math.nan, "tau_low": math.nan, "tau_high": math.nan,
            "undefined_resamples": 0, "note": "",
        }  # fmt: skip
        if len(defined) < 2:
            row["note"] = f"τ defined on {len(defined)} target(s): nothing to pool"
            rows.append(row)
            continue
        null = np.zeros(N_PERMUTATIONS)
        for target in defined.target:
            scores, gains = pairs[(target, estimator, kind)]
            null += null_taus(scores, gains, random_orderings(len(gains), rng))
        null /= len(defined)
        observed = float(defined.tau.mean())
        row.update(
            tau=observed,
            weighted_tau=float(defined.weighted_tau.mean()),
            p_permutation=float((np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1)
                                / (N_PERMUTATIONS + 1)),
            note=f"mean τ over {len(defined)} targets",
        )  # fmt: skip
        rows.append(row)
    return rows


def _matrix(frame: pd.DataFrame, column: str, seeds: list[int], sources: list[str]) -> np.ndarray:
    """`column` as a (source x seed) array: a bootstrap draw averages some of its columns."""
    table = frame.pivot_table(index="source", columns="seed", values=column)
    return table.loc[sources, seeds].to_numpy()


def tau_table(
    estimates: pd.DataFrame, gains: pd.DataFrame, n_boot: int, seed: int = 0
) -> pd.DataFrame:
    """One row per (target, estimator, gain kind): the sources ranked, τ, weighted τ, the
    exact permutation p, a 95% bootstrap interval of τ over seeds (resamples whose τ is
    undefined, all sources tied, are left out of it and counted), and a note where no τ can
    be given or tested; then a pooled row per (estimator, gain kind)."""
    rows = []
    pairs: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
    rng = np.random.default_rng(seed)
    transfer = estimates[estimates.source != NO_SOURCE].dropna(subset=["score"])
    for (target, estimator), scores in transfer.groupby(["target", "estimator"], sort=True):
        for kind in GAIN_KINDS:
            measured = gains[(gains.target == target) & (gains.kind == kind)]
            sources = sorted(set(scores.source) & set(measured.source))
            seeds = sorted(
                set(scores.seed[scores.source.isin(sources)])
                & set(measured.seed[measured.source.isin(sources)])
            )
            row: dict[str, Any] = {
                "target": target,
                "estimator": estimator,
                "gain": kind,
                "n_sources": len(sources),
                "n_seeds": len(seeds),
                "sources": ";".join(sources),
                "tau": math.nan,
                "weighted_tau": math.nan,
                "p_permutation": math.nan,
                "tau_low": math.nan,
                "tau_high": math.nan,
                "undefined_resamples": 0,
                "note": "",
            }
            complete = _complete(scores, measured, sources, seeds)
            if len(sources) < MIN_SOURCES or not complete:
                row["note"] = (
                    f"{len(sources)} source(s) with estimates and {kind.upper()} runs: a "
                    f"ranking needs at least {MIN_SOURCES}"
                    if len(sources) < MIN_SOURCES
                    else "not every source has every seed"
                )
                rows.append(row)
                continue
            estimated = _matrix(scores, "score", seeds, sources)
            gained = _matrix(measured, "gain", seeds, sources)
            tau = _tau(estimated.mean(axis=1), gained.mean(axis=1))
            weighted = _weighted_tau(estimated.mean(axis=1), gained.mean(axis=1))
            # a seed drawn twice counts twice
            drawn = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
            draws = taus_b(estimated[:, drawn].mean(axis=2).T, gained[:, drawn].mean(axis=2).T)
            finite = draws[np.isfinite(draws)]
            means = (estimated.mean(axis=1), gained.mean(axis=1))
            pairs[(target, estimator, kind)] = means
            row.update(
                tau=tau,
                weighted_tau=weighted,
                p_permutation=permutation_p(*means, rng),
                undefined_resamples=n_boot - len(finite),
            )
            if len(finite):
                row.update(
                    tau_low=float(np.percentile(finite, 2.5)),
                    tau_high=float(np.percentile(finite, 97.5)),
                )
            saturated = estimator == "hscore" and np.ptp(estimated.mean(axis=1)) == 0
            if not np.isfinite(tau):
                row["note"] = (
                    "H-score ties at classes - 1 when the rows do not outnumber the feature "
                    "dimensions: τ undefined"
                    if saturated
                    else "tied estimates or gains: τ undefined"
                )
            else:
                row["note"] = _few_note(len(sources), len(seeds))
            rows.append(row)
    table = pd.DataFrame(rows, columns=TAU_COLUMNS)
    if len(table):
        table = pd.concat([table, pd.DataFrame(pooled_rows(table, pairs, rng))], ignore_index=True)
    return table[TAU_COLUMNS] if len(table) else table


def _few_note(n_sources: int, n_seeds: int) -> str:
    notes = []
    if smallest_p(n_sources) >= 0.05:
        notes.append(
            f"{n_sources} sources: the smallest possible permutation p is "
            f"{smallest_p(n_sources):.3f}, so no ranking of them can be significant at 0.05"
        )
    if n_seeds < FEW_SEEDS:
        notes.append(f"{n_seeds} seeds: the interval takes few distinct values")
    return "; ".join(notes)


def _complete(scores: pd.DataFrame, measured: pd.DataFrame, sources: list[str], seeds) -> bool:
    """Every (source, seed) has one estimate and one gain (else the means mix seed sets)."""
    need = len(sources) * len(seeds)
    have_scores = scores[scores.source.isin(sources) & scores.seed.isin(seeds)]
    have_gains = measured[measured.source.isin(sources) & measured.seed.isin(seeds)]
    return len(seeds) > 0 and len(have_scores) == need and len(have_gains) == need


def _fmt(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:+.2f}"


def _fmt_p(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"


def tau_markdown(table: pd.DataFrame) -> str:
    """τ per target and estimator, FT and FE gains side by side; notes where no τ exists."""
    lines = [
        "| Target | Estimator | Gain | Sources | τ [95% CI over seeds] | permutation p | "
        "weighted τ | Note |",
        "|---|---|---|:---:|:---:|:---:|:---:|---|",
    ]
    for row in table.itertuples():
        interval = _fmt(row.tau)
        if np.isfinite(row.tau_low):
            interval += f" [{_fmt(row.tau_low)}, {_fmt(row.tau_high)}]"
        note = row.note
        if row.undefined_resamples:
            note += f" ({row.undefined_resamples} resamples with τ undefined, left out)"
        lines.append(
            f"| {row.target} | {row.estimator} | {row.gain.upper()} | {row.n_sources} | "
            f"{interval} | {_fmt_p(row.p_permutation)} | {_fmt(row.weighted_tau)} | {note} |"
        )
    return "\n".join(lines) + "\n"


def estimate_summary(estimates: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """Mean estimate and mean FT/FE gain per (target, source, estimator): the figure's data."""
    means = (
        estimates.dropna(subset=["score"])
        .groupby(["target", "source", "estimator"], as_index=False)["score"]
        .mean()
    )
    mean_gains = gains.pivot_table(index=["target", "source"], columns="kind", values="gain")
    mean_gains.columns = [f"{kind}_gain" for kind in mean_gains.columns]
    return means.merge(mean_gains.reset_index(), on=["target", "source"], how="left")


def write_estimate_figure(
    summary: pd.DataFrame, path: str, source_order: list[str] | None = None
) -> None:
    from .reporting import save_figure

    save_figure(estimate_plot(summary, source_order), path)


def _why_nothing_ranks(part: pd.DataFrame) -> str | None:
    """Why one estimator's panel ranks no sources, or None where it ranks some."""
    rankable = [points.score for _, points in part.groupby("target") if len(points) > 1]
    if len(part) and not rankable:
        return "one source per target:\nnothing to rank"
    if rankable and not any(score.std(ddof=0) > 0 for score in rankable):
        # H-score ties at classes - 1 where rows do not outnumber dimensions
        return "the sources' scores tie: no ranking\n(tau.md says why)"
    return None


def estimate_plot(summary: pd.DataFrame, source_order: list[str] | None = None):
    """Estimator score against the measured FT gain: one panel per estimator, a point per
    (target, source) coloured by source (its colour of every figure: `source_colour` over
    `source_order`, the grid's sources) and shaped by target, scores standardised within
    each target (estimators' scales differ between targets, and only the order within a
    target matters); one legend beside the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reporting import add_source_target_legend, source_colour, target_markers

    estimators = sorted(summary.estimator.unique()) if len(summary) else []
    columns = max(1, min(3, len(estimators)))
    rows = max(1, math.ceil(len(estimators) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(estimators) :]:
        ax.axis("off")
    shown = summary[summary.source != NO_SOURCE] if len(summary) else summary
    present = list(dict.fromkeys(shown.source)) if len(shown) else []
    # colours and legend in the grid's order, as in Figure 3; a source outside it goes last
    order = list(dict.fromkeys([*(source_order or []), *present]))
    sources = [s for s in order if s in present]
    targets = sorted(shown.target.unique()) if len(shown) else []
    markers = target_markers(targets)
    for ax, estimator in zip(axes.flat, estimators, strict=False):
        part = shown[shown.estimator == estimator]
        for target, points in part.groupby("target"):
            spread = points.score.std(ddof=0)
            z = (points.score - points.score.mean()) / (spread if spread > 0 else 1.0)
            y = points.get("ft_gain", pd.Series(np.nan, index=points.index))
            colours = [source_colour(order, s) for s in points.source]
            ax.scatter(z, y, c=colours, marker=markers.get(target, "o"), s=30)
        ax.axhline(0, color="grey", lw=0.8)
        unranked = _why_nothing_ranks(part)
        if unranked:  # every point at 0 over ticks of nothing: the axis says why instead
            ax.set_xticks([])
        ax.set(title=estimator,
               xlabel=unranked or "mean score over seeds\n(standardised per target)",
               ylabel="FT gain over No transfer\n(AUC, mean over seeds)")  # fmt: skip
    right = 1.0
    if sources or targets:
        right = 1 - 1.6 / fig.get_figwidth()  # room for the legend beside the panels
        add_source_target_legend(fig, order, sources, markers, x=right + 0.01, fontsize=7)
    fig.tight_layout(rect=(0, 0, right, 1))
    return fig


def write_transferability_report(
    estimate_files: list[str],
    run_files: list[str],
    report: dict[str, str],
    n_boot: int,
    outputs: dict[str, str],
    source_order: list[str] | None = None,
) -> pd.DataFrame:
    """estimates.csv (every estimate), tau.csv / tau.md and the figure of one architecture
    (sources coloured as in every figure: `source_order`, the grid's sources)."""
    from .io import write_csv, write_text
    from .runs import read_runs

    estimates = read_estimates(estimate_files)
    gains = seed_gains(read_runs(run_files), report["fe_method"], report["ft_method"])
    table = tau_table(estimates, gains, n_boot)
    write_csv(estimates, outputs["estimates"], "%.10g")
    write_csv(table, outputs["tau"])
    header = (
        "Kendall's τ between each estimator's ranking of the sources (mean over seeds of "
        "its score on the train+val rows) and their measured mean AUC gain over No transfer "
        "(FT: fine-tuned, FE: frozen features); 95% interval from resampling the seeds; "
        "permutation p: the share of all orderings of the gains whose |τ| reaches the "
        "observed one (n sources: never below 2/n!); `pooled`: the mean τ over targets with "
        "its joint permutation p.\n\n"
    )
    write_text(outputs["md"], header + tau_markdown(table))
    write_estimate_figure(estimate_summary(estimates, gains), outputs["png"], source_order)
    return table
