"""Across architectures: does a source's benefit hold for every network?

Both outputs are computed from the run records alone, per architecture over the targets of
its own grid:
- the table "architecture x source": the mean FT gain over No transfer, i.e. the mean over
  targets of (mean FT AUC of the source - mean No-transfer AUC), each mean over seeds;
- the figure: mean AUC per source and method (FE, FT) over those targets, one bar group per
  architecture.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .architectures import architecture
from .config import NO_SOURCE
from .io import write_csv, write_text
from .reporting import SOURCE_LABELS, save_figure, source_colour
from .runs import read_runs, runs_frame
from .tables import to_latex, to_markdown


def seed_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC over seeds per (architecture, target, source, method)."""
    keys = ["architecture", "target", "source", "method"]
    return runs.groupby(keys, as_index=False)["auc"].mean()


def ft_gains(means: pd.DataFrame, ft_method: str) -> pd.DataFrame:
    """Per (architecture, source): mean over targets of FT AUC minus No transfer's AUC, and
    how many targets the mean covers."""
    ft = means[means.method == ft_method]
    baseline = ft[ft.source == NO_SOURCE].set_index(["architecture", "target"])["auc"]
    rows = []
    for (arch, source), group in ft[ft.source != NO_SOURCE].groupby(["architecture", "source"]):
        keys = [(arch, t) for t in group.target]
        paired = [(auc, baseline.get(k)) for auc, k in zip(group.auc, keys, strict=True)]
        diffs = [auc - base for auc, base in paired if base is not None]
        rows.append(
            {
                "architecture": arch,
                "source": source,
                "ft_gain": float(np.mean(diffs)) if diffs else np.nan,
                "n_targets": len(diffs),
            }
        )
    return pd.DataFrame(rows, columns=["architecture", "source", "ft_gain", "n_targets"])


def mean_aucs(means: pd.DataFrame, fe_method: str, ft_method: str) -> pd.DataFrame:
    """Per (architecture, source, FE/FT): mean AUC over the architecture's targets."""
    kinds = {fe_method: "FE", ft_method: "FT"}
    chosen = means[means.method.isin(kinds)].assign(kind=lambda f: f.method.map(kinds))
    out = chosen.groupby(["architecture", "source", "kind"], as_index=False).agg(
        mean_auc=("auc", "mean"), n_targets=("target", "nunique")
    )
    return out[~((out.source == NO_SOURCE) & (out.kind == "FE"))]


def arch_label(arch: str, sizes: dict[str, int] | None) -> str:
    """An architecture as the comparison names it: with its image size, where grids give it
    (architectures may run at different sizes)."""
    return f"{architecture(arch).name} ({sizes[arch]} px)" if sizes else arch


def gain_table(
    gains: pd.DataFrame,
    archs: list[str],
    sources: list[str],
    sizes: dict[str, int] | None = None,
) -> pd.DataFrame:
    """The Markdown/LaTeX layout: a row per architecture, a column per transferred source."""
    columns = [s for s in sources if s != NO_SOURCE]
    rows = []
    for arch in archs:
        row = {"Architecture": arch_label(arch, sizes)}
        for source in columns:
            found = gains[(gains.architecture == arch) & (gains.source == source)]
            value = found.ft_gain.iloc[0] if len(found) else np.nan
            shown = round(float(value), 3) + 0.0  # no "-0.000"
            row[SOURCE_LABELS.get(source, source)] = "" if np.isnan(value) else f"{shown:+.3f}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["Architecture", *(SOURCE_LABELS.get(s, s) for s in columns)])


def write_comparison(
    run_files: list[str],
    archs: list[str],
    sources: list[str],
    report: dict[str, Any],
    paths: dict[str, str],
    sizes: dict[str, int] | None = None,
) -> pd.DataFrame:
    means = seed_means(runs_frame(read_runs(run_files)))
    gains = ft_gains(means, report["ft_method"])
    write_csv(gains, paths["csv"])
    table = gain_table(gains, archs, sources, sizes)
    note = (
        f"Mean gain of {report['ft_method']} over No transfer in macro AUC (each AUC a mean "
        "over seeds), averaged over the targets of each architecture's grid."
    )
    write_text(paths["md"], to_markdown(table) + f"\n{note}\n")
    write_text(paths["tex"], to_latex(table, note))
    plot_architectures(mean_aucs(means, report["fe_method"], report["ft_method"]), archs,
                       sources, paths["png"], sizes)  # fmt: skip
    return gains


def plot_architectures(
    data: pd.DataFrame,
    archs: list[str],
    sources: list[str],
    png: str,
    sizes: dict[str, int] | None = None,
) -> None:
    save_figure(architectures_figure(data, archs, sources, sizes), png, dpi=150)


def architectures_figure(
    data: pd.DataFrame,
    archs: list[str],
    sources: list[str],
    sizes: dict[str, int] | None = None,
):
    """Mean AUC per source and method (bars), grouped by architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [
        (source, kind)
        for source in sources
        for kind in ("FE", "FT")
        if not (source == NO_SOURCE and kind == "FE")
    ]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(archs) + 3), 4))
    handles, ticks = {}, []  # legend entries by (source, kind), once each
    for position, arch in enumerate(archs):
        mine = data[data.architecture == arch].set_index(["source", "kind"])
        present = [bar for bar in bars if bar in mine.index]  # bars of this grid only
        width = 0.8 / max(len(present), 4)
        start = position - width * len(present) / 2  # the group centred on its tick
        for i, (source, kind) in enumerate(present):
            label = (f"{SOURCE_LABELS.get(source, source)} {kind}" if source != NO_SOURCE
                     else SOURCE_LABELS[NO_SOURCE])  # fmt: skip
            colour = source_colour(sources, source, kind)
            drawn = ax.bar(start + (i + 0.5) * width, mine.loc[(source, kind), "mean_auc"],
                           width, color=colour, label=label)  # fmt: skip
            handles.setdefault((source, kind), drawn)
        n = int(mine.n_targets.max()) if len(mine) else 0
        size = f", {sizes[arch]} px" if sizes else ""
        name = architecture(arch).name
        ticks.append(f"{name}\n({n} target{'s' if n != 1 else ''}{size})")
    ax.set_xticks(np.arange(len(archs)), ticks)
    ax.set_ylabel("Mean macro AUC over the\narchitecture's targets")
    ax.set_ylim(0, 1)
    ax.set_title("Mean performance per source and method, per architecture")
    shown = [handles[bar] for bar in bars if bar in handles]  # in the config's order
    ax.legend(shown, [h.get_label() for h in shown], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1), frameon=False)  # fmt: skip
    fig.tight_layout()
    return fig
