"""The paper's outputs from run JSONs: Table II (CSV, Markdown, LaTeX) and Figure 3.

Table II cells are "mean ± max deviation" of the macro AUC over seeds, where the maximum
deviation is max |AUC_seed - mean|, as the paper reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import IMAGENET, NO_SOURCE, same_data
from .io import atomic_path, read_csv, write_csv, write_text
from .runs import RunRecord, group_runs, no_transfer_means, read_runs, runs_frame
from .tables import to_latex, to_markdown

SOURCE_LABELS = {NO_SOURCE: "No transfer", IMAGENET: "ImageNet"}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Tidy Table II: one row per (target, source, method) with mean, max deviation, std."""

    def stats(group: pd.DataFrame) -> pd.Series:
        auc = group["auc"].astype(float).to_numpy()
        mean = float(np.mean(auc))
        return pd.Series(
            {
                "mean": mean,
                "max_deviation": float(np.max(np.abs(auc - mean))),
                "std": float(np.std(auc, ddof=1)) if len(auc) > 1 else 0.0,
                "n_seeds": len(auc),
                "seeds": ";".join(map(str, sorted(group["seed"]))),
                "converged": bool(group["converged"].all()),
                "files": ";".join(sorted(group["file"])),
            }
        )

    keys = ["target", "source", "method"]
    return runs.groupby(keys, sort=False).apply(stats, include_groups=False).reset_index()


def cell(mean: float | None, deviation: float | None) -> str:
    if mean is None or np.isnan(mean):
        return ""
    return f"{mean:.3f} ± {deviation:.3f}"


def _columns(config: dict[str, Any], sources: list[str]) -> list[tuple[str, str, str]]:
    """(header, source, method) per column: No transfer, then FE and FT of each source."""
    fe, ft = config["report"]["fe_method"], config["report"]["ft_method"]
    columns = [("No transfer", NO_SOURCE, ft)] if NO_SOURCE in sources else []
    for source in sources:
        if source != NO_SOURCE:
            label = SOURCE_LABELS.get(source, source)
            columns += [(f"{label} FE", source, fe), (f"{label} FT", source, ft)]
    return columns


MARKS = {1: " ↑", -1: " ↓"}
NOT_CONVERGED = " ‡"


def layout(
    config: dict[str, Any],
    summary: pd.DataFrame,
    sources: list[str],
    stats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The paper's layout: a row per target; 'Mean <group>' rows; 'Differences' (FT - FE).

    An arrow marks a cell that is better (↑) or worse (↓) than No transfer (in a Differences
    row: FT than FE) after the multiple-comparison adjustment (see medtransfer.stats)."""
    columns = _columns(config, sources)
    index = summary.set_index(["target", "source", "method"])
    marks: dict[tuple[str, str, str], int] = {}
    if stats is not None and len(stats):
        marks = {
            (t, s, c): int(m)
            for t, s, c, m in zip(
                stats.target, stats.source, stats.comparison, stats["mark"], strict=True
            )
        }
    fe_name, ft_name = config["report"]["fe_method"], config["report"]["ft_method"]

    def mark(target: str, source: str, comparison: str) -> str:
        return MARKS.get(marks.get((target, source, comparison), 0), "")

    def unconverged(target: str, source: str, method: str) -> str:
        converged = (
            index.at[(target, source, method), "converged"] if "converged" in index else True
        )
        return "" if converged else NOT_CONVERGED

    def value(target: str, source: str, method: str) -> tuple[float, float] | None:
        key = (target, source, method)
        return (
            (index.at[key, "mean"], index.at[key, "max_deviation"]) if key in index.index else None
        )

    def target_row(target: str) -> dict[str, str]:
        row = {"Target": target}
        for header, source, method in columns:
            found = value(target, source, method)
            if same_data(config, source, target):
                row[header] = "N.A."
            elif found:
                row[header] = (
                    cell(*found)
                    + unconverged(target, source, method)
                    + mark(target, source, f"{method} - no transfer")
                )
            else:
                row[header] = ""
        return row

    def mean_of(targets: list[str], source: str, method: str) -> tuple[float, float] | None:
        found = [value(t, source, method) for t in targets]
        if any(f is None for f in found) or not found:
            return None
        return float(np.mean([f[0] for f in found])), float(np.mean([f[1] for f in found]))

    def differences(targets: list[str]) -> dict[str, str]:
        row = {"Target": "Differences"}
        for header, source, method in columns:
            row[header] = ""
            if source != NO_SOURCE and method == config["report"]["ft_method"]:
                ft = mean_of(targets, source, method)
                fe = mean_of(targets, source, config["report"]["fe_method"])
                if ft and fe:
                    single = (
                        mark(targets[0], source, f"{ft_name} - {fe_name}")
                        if len(targets) == 1
                        else ""
                    )
                    row[header] = f"{ft[0] - fe[0]:+.3f}{single}"
        return row

    rows, grouped = [], set()
    groups = config["report"]["groups"]
    for target in config["targets"]:
        group = next((g for g, members in groups.items() if target in members), None)
        if group is None:
            rows += [target_row(target), differences([target])]
            continue
        if group in grouped:
            continue
        grouped.add(group)
        members = [t for t in config["targets"] if t in groups[group]]
        rows += [target_row(t) for t in members]
        mean_row = {"Target": f"Mean {group}"}
        for header, source, method in columns:
            found = mean_of(members, source, method)
            mean_row[header] = cell(*found) if found else ""
        rows += [mean_row, differences(members)]
    return pd.DataFrame(rows, columns=["Target", *[c[0] for c in columns]])


CELLS_NOTE = "Cells: macro one-vs-rest ROC AUC, mean ± maximum deviation over seeds."


def marks_footnote(stats: pd.DataFrame, report: dict[str, Any]) -> str:
    """What the arrows mean, the family they were adjusted over, and what the seeds can show."""
    from .stats import CORRECTION_NAMES

    family = int(stats["family_size"].iloc[0]) if len(stats) and "family_size" in stats else 0
    note = (
        "↑ / ↓: better / worse than No transfer (Differences rows: FT than FE) by the corrected "
        "resampled t-test over seeds (Nadeau & Bengio 2003; the seed is the unit), p-values "
        f"adjusted by {CORRECTION_NAMES[report['correction']]} over the {family} comparisons "
        f"of this table (α = {report['alpha']}); no mark without at least two seeds."
    )
    detectable = stats["detectable_difference"] if "detectable_difference" in stats else []
    detectable = np.asarray(detectable, dtype=float)
    detectable = detectable[np.isfinite(detectable)]
    if len(detectable):
        seeds = sorted(set(stats["n_seeds"].astype(int)))
        note += (
            f" At these seeds ({'/'.join(map(str, seeds))}) the test finds a true difference "
            f"with 80 % power only from about {_auc_difference(np.median(detectable))} (median "
            f"over the comparisons; {_auc_difference(detectable.min())} to "
            f"{_auc_difference(detectable.max())}, before the adjustment): a cell without a "
            "mark is not evidence of no difference."
        )
    return note


def _auc_difference(value: float) -> str:
    """An AUC difference; beyond 1 none exists, so say that instead of a number."""
    return f"{value:.3f} AUC" if value <= 1 else "more than any AUC difference (> 1)"


def convergence_footnote(summary: pd.DataFrame) -> str:
    if "converged" not in summary or summary["converged"].all():
        return ""
    return (
        f"{NOT_CONVERGED.strip()}: the classifier of at least one of the cell's runs stopped "
        "before converging (classifier_converged: false in its run file) or gave test scores "
        "that tie to 1e-9 of their size, so that its AUC ranks floating-point noise "
        "(scores_nearly_tied: true; classifiers.svm_features: standardised avoids it)."
    )


def empty_table_note(table: pd.DataFrame, report: dict[str, Any]) -> str:
    """A table without a single value says why, rather than standing blank."""
    cells = table.drop(columns="Target").to_numpy().ravel()
    if any(isinstance(c, str) and c.strip() for c in cells):
        return ""
    return (
        "No cell of this table has runs. Its columns are No transfer (source none with "
        f"report.ft_method, {report['ft_method']}) and each transfer source with "
        f"report.fe_method ({report['fe_method']}) or report.ft_method; this grid's runs "
        "are none of these (table2.csv lists them all). Add a transfer source, or "
        "report.ft_method's method to the methods."
    )


def overlap_footnote(runs: list[RunRecord]) -> str:
    """Source-target overlap the audit found in the test sets of the table's runs."""
    found: dict[tuple[str, str], list[int]] = {}
    for run in runs:
        copies = run.leakage.get("source_target", {})
        n = (copies.get("exact") or 0) + (copies.get("near") or 0)
        if n:
            found.setdefault((run.target, run.source), []).append(n)
    if not found:
        return ""
    parts = [
        f"{target} ← {source}: {max(ns)} test image(s) with a copy in the source"
        for (target, source), ns in sorted(found.items())
    ]
    return "Source images in target test sets (leakage audit): " + "; ".join(parts) + "."


def write_table2(
    config: dict[str, Any], run_files: list[str], sources: list[str], paths: dict[str, str]
) -> pd.DataFrame:
    """Table II in three formats plus the statistics behind its marks."""
    from .stats import AucDraws, comparisons, run_intervals

    report = config["report"]
    runs = read_runs(run_files)
    summary = summarise(runs_frame(runs))
    grouped = group_runs(runs)
    draws = AucDraws()  # each run's bootstrap AUCs, computed once for both tables
    stats = comparisons(
        grouped,
        report["fe_method"],
        report["ft_method"],
        report["alpha"],
        report["correction"],
        draws,
    )
    write_csv(summary, paths["csv"])
    write_csv(stats, paths["stats"])
    write_csv(run_intervals(grouped, draws), paths["stats_runs"])
    table = layout(config, summary, sources, stats)
    notes = [
        empty_table_note(table, report),
        CELLS_NOTE,
        marks_footnote(stats, report),
        convergence_footnote(summary),
        overlap_footnote(runs),
    ]
    notes = [n for n in notes if n]
    write_text(paths["md"], to_markdown(table) + "".join(f"\n{n}\n" for n in notes))
    caption = " ".join(notes)
    write_text(paths["tex"], to_latex(table, caption))
    return table


def source_colour(sources: list[str], source: str, kind: str = "FT") -> tuple:
    """One hue per source in every figure, FT dark and FE light (tab20's pairs); No transfer
    grey."""
    import matplotlib.pyplot as plt

    baseline = (NO_SOURCE, SOURCE_LABELS[NO_SOURCE])  # by name or as labelled
    if source in baseline:
        return (0.5, 0.5, 0.5)
    colours = plt.get_cmap("tab20").colors
    hue = [s for s in sources if s not in baseline].index(source) % 7  # pair 7 is grey
    return colours[2 * hue + (kind == "FE")]


def save_figure(fig: Any, *paths: str, dpi: int = 120) -> None:
    """Write a figure to each path (format from its suffix), atomically, with everything
    drawn beside the axes (legends outside them) inside the image; then free it."""
    import matplotlib.pyplot as plt

    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close(fig)


TARGET_MARKERS = "osD^vP*X<>"


def target_markers(targets: list[str | None]) -> dict[str | None, str]:
    """One shape per target, by name, so that a target has the same shape in every figure
    whatever order its data come in."""
    return dict(zip(sorted(targets, key=str), TARGET_MARKERS, strict=False))


def add_source_target_legend(
    fig: Any,
    order: list[str],
    sources: list[str],
    markers: dict[str | None, str],
    x: float,
    fontsize: float | None = None,
) -> None:
    """One legend beside the panels of a scatter whose points are coloured by source (its
    colour of every figure, `source_colour` over `order`) and shaped by target."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    targets = [t for t in markers if t is not None]
    handles = [Patch(color=source_colour(order, s), label=s) for s in sources]
    handles += [Line2D([], [], ls="", marker=markers[t], color="black", label=t)
                for t in targets]  # fmt: skip
    title = "source (colour)\ntarget (shape)" if targets else "source"
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(x, 0.5), frameon=False,
               fontsize=fontsize, title=title, title_fontsize=fontsize)  # fmt: skip


def figure3_data(config: dict[str, Any], summary: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Per source and method: mean AUC over targets, the std of the targets' means, and No
    transfer's mean over the same targets (sources skip targets of their own data)."""
    fe, ft = config["report"]["fe_method"], config["report"]["ft_method"]
    baseline = no_transfer_means(summary, ft)
    rows = []
    for source in sources:
        for kind, method in (("FE", fe), ("FT", ft)):
            if source == NO_SOURCE and kind == "FE":
                continue
            part = summary[(summary.source == source) & (summary.method == method)]
            if len(part):
                same = [baseline[t] for t in part.target if t in baseline.index]
                rows.append(
                    {
                        "source": SOURCE_LABELS.get(source, source),
                        "kind": kind,
                        "mean_auc": part["mean"].mean(),
                        "std_over_targets": part["mean"].std(ddof=0),
                        "n_targets": len(part),
                        "no_transfer_same_targets": np.mean(same) if same else np.nan,
                    }
                )
    columns = ["source", "kind", "mean_auc", "std_over_targets", "n_targets",
               "no_transfer_same_targets"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)  # columns also when a grid has no FE/FT bar


def write_figure3(
    config: dict[str, Any], table_csv: str, sources: list[str], png: str, pdf: str, data_csv: str
) -> pd.DataFrame:
    data = figure3_data(config, read_csv(table_csv), sources)
    write_csv(data, data_csv)
    save_figure(figure3_plot(data, [SOURCE_LABELS.get(s, s) for s in sources]), png, pdf,
                dpi=150)  # fmt: skip
    return data


def figure3_plot(data: pd.DataFrame, source_order: list[str] | None = None):
    """Figure 3 of `figure3_data`: FE (light) and FT (dark) bars per source in its colour of
    every figure (`source_colour` over `source_order`, the grid's sources as labelled), No
    transfer over the same targets dashed, the legend outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    bars = data[data.source != SOURCE_LABELS[NO_SOURCE]]
    labels = list(dict.fromkeys(bars.source))
    order = source_order or labels
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(labels) + 3), 4))
    kinds = [k for k in ("FE", "FT") if k in set(bars.kind)]
    width = 0.8 / max(len(kinds), 1)
    for index, kind in enumerate(kinds):
        part = bars[bars.kind == kind].set_index("source").reindex(labels)
        ax.bar(
            x + (index - (len(kinds) - 1) / 2) * width,
            part.mean_auc,
            width,
            yerr=part.std_over_targets.where(part.n_targets > 1),  # no spread of one target
            capsize=4,
            color=[source_colour(order, label, kind) for label in labels],
        )
    reference = bars.drop_duplicates("source").set_index("source").reindex(labels)
    for i, value in enumerate(reference.no_transfer_same_targets):
        if np.isfinite(value):  # No TL over the same targets as this source's bars
            ax.hlines(value, i - 0.45, i + 0.45, colors="black", linestyles="--",
                      label="No TL (same targets)" if i == 0 else None)  # fmt: skip
    # a source's bars average the targets it can transfer to: say how many
    ticks = [f"{label}\n({n} target{'s' if n != 1 else ''})"
             for label, n in zip(labels, reference.n_targets, strict=True)]  # fmt: skip
    ax.set_xticks(x, ticks)
    one_target = len(reference) > 0 and bool((reference.n_targets == 1).all())
    ax.set_ylabel(  # with one target there is no spread over targets to draw
        "Macro AUC of the one target\n(mean over seeds; no error bars)"
        if one_target
        else "Mean macro AUC over targets\n(error bars: sd over targets)"
    )
    ax.set_ylim(0, 1)
    ax.set_title("Mean performance per source")
    if labels:
        shades = [Patch(color=(0.75, 0.75, 0.75), label="FE (light)"),
                  Patch(color=(0.45, 0.45, 0.45), label="FT (dark)")]  # fmt: skip
        kept = [s for s in shades if s.get_label()[:2] in kinds]
        handles = kept + ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    else:
        message = "no transfer source with FE or FT runs in this grid:\nnothing to compare"
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    fig.tight_layout()
    return fig


def structural_table(
    ft_method: str,
    scores: list[dict[str, Any]],
    summary: pd.DataFrame,
    null: dict[str, Any],
) -> pd.DataFrame:
    """Structural-filter % per source beside the same measure on the untrained network (the
    null: gradient ascent alone draws smooth patterns that score as structure) and its mean
    FT gain over No transfer (per target, then averaged over the targets where both exist)."""
    baseline = no_transfer_means(summary, ft_method)
    rows = []
    for entry in scores:
        mine = summary[(summary.source == entry["source"]) & (summary.method == ft_method)]
        gains = [
            m - baseline[t]
            for t, m in zip(mine.target, mine["mean"], strict=True)
            if t in baseline.index
        ]
        rows.append(
            {
                "source": entry["source"],
                "structural_percent": entry["structural_percent"],
                "untrained_percent": null["structural_percent"],
                "above_untrained": entry["structural_percent"] - null["structural_percent"],
                "mean_ft_gain": float(np.mean(gains)) if gains else np.nan,
                "n_targets": len(gains),
            }
        )
    return pd.DataFrame(rows)
