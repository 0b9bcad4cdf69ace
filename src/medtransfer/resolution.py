"""Across image sizes: does a source's or a method's standing change with the resolution?

For every architecture the grid runs at two or more sizes, from the run records alone: the
mean AUC per source and method (FE, FT) at each size, over the targets that every size of
that architecture ran (a size run on fewer targets would otherwise be compared over other
tasks), each target's AUC a mean over seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .compare import seed_means
from .config import NO_SOURCE
from .io import write_csv, write_text
from .reporting import SOURCE_LABELS, save_figure, source_colour
from .runs import read_runs, runs_frame
from .tables import to_markdown

COLUMNS = ["architecture", "image_size", "source", "kind", "mean_auc", "n_targets", "targets"]


def resolution_means(
    runs: pd.DataFrame,
    networks: dict[str, dict[str, Any]],
    fe_method: str,
    ft_method: str,
) -> pd.DataFrame:
    """Per (architecture, image size, source, FE/FT): the mean AUC over the targets every
    size of the architecture ran. `networks`: {grid network: {architecture, image_size}}."""
    kinds = {fe_method: "FE", ft_method: "FT"}
    means = seed_means(runs)
    means = means[means.method.isin(kinds) & means.architecture.isin(networks)]
    means = means.assign(
        kind=means.method.map(kinds),
        image_size=means.architecture.map(lambda n: networks[n]["image_size"]),
        architecture=means.architecture.map(lambda n: networks[n]["architecture"]),
    )
    rows = []
    for arch, group in means.groupby("architecture"):
        if group.image_size.nunique() < 2:
            continue
        common = set.intersection(*(set(g.target) for _, g in group.groupby("image_size")))
        kept = group[group.target.isin(common)]
        for (size, source, kind), cell in kept.groupby(["image_size", "source", "kind"]):
            if source == NO_SOURCE and kind == "FE":
                continue  # No transfer is fine-tuned from scratch: its FE is not a baseline
            rows.append({"architecture": arch, "image_size": int(size), "source": source,
                         "kind": kind, "mean_auc": float(cell.auc.mean()),
                         "n_targets": cell.target.nunique(),
                         "targets": ";".join(sorted(cell.target))})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def resolution_table(data: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Architecture x source x method rows, one column per image size."""
    sizes = sorted(data.image_size.unique())
    order = {s: i for i, s in enumerate(sources)}
    rows = []
    keys = ["architecture", "source", "kind"]
    for (arch, source, kind), group in sorted(
        data.groupby(keys), key=lambda item: (item[0][0], order.get(item[0][1], 99), item[0][2])
    ):
        by_size = group.set_index("image_size").mean_auc
        row = {"Architecture": arch, "Source": SOURCE_LABELS.get(source, source), "Method": kind}
        row |= {f"{s} px": f"{by_size[s]:.3f}" if s in by_size else "" for s in sizes}
        rows.append(row)
    return pd.DataFrame(rows)


def resolution_figure(data: pd.DataFrame, sources: list[str]):
    """Mean AUC against image size, a panel per method (FE, FT), a line per architecture
    and source (the source's colour, lighter for FE; a marker per architecture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    kinds = [k for k in ("FE", "FT") if k in set(data.kind)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds) + 2.6, 3.8), sharex=True,
                             sharey=True, squeeze=False)  # fmt: skip
    markers = dict(zip(sorted(data.architecture.unique()), "osD^v<>", strict=False))
    sizes = sorted(data.image_size.unique())
    for ax, kind in zip(axes[0], kinds, strict=True):
        for (arch, source), line in data[data.kind == kind].groupby(["architecture", "source"]):
            line = line.sort_values("image_size")
            ax.plot(line.image_size, line.mean_auc, marker=markers[arch],
                    color=source_colour(sources, source, kind))  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{s}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("Image size (px)")
        ax.set_title(f"{kind} ({'fine-tuned' if kind == 'FT' else 'frozen features'})")
    axes[0][0].set_ylabel("Mean macro AUC over the targets\nevery size ran (seed means)")
    low = float(np.nanmin(data.mean_auc)) if len(data) else 0.5
    axes[0][0].set_ylim(max(0.0, min(0.5, low - 0.05)), 1.0)
    shown = [s for s in sources if s in set(data.source)]
    handles = [Line2D([], [], color=source_colour(sources, s, "FT"), lw=2,
                      label=SOURCE_LABELS.get(s, s)) for s in shown]  # fmt: skip
    handles += [Line2D([], [], color="black", marker=m, ls="none", label=a)
                for a, m in markers.items()]  # fmt: skip
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.80, 0.5), fontsize=8,
               frameon=False, title="source (FE lighter)\nand architecture",
               title_fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 0.79, 1))
    return fig


def write_resolution(
    run_files: list[str],
    networks: dict[str, dict[str, Any]],
    sources: list[str],
    report: dict[str, Any],
    paths: dict[str, str],
) -> pd.DataFrame:
    data = resolution_means(
        runs_frame(read_runs(run_files)), networks, report["fe_method"], report["ft_method"]
    )
    write_csv(data, paths["csv"])
    note = (
        f"Mean macro AUC of {report['fe_method']} (FE) and {report['ft_method']} (FT) per "
        "image size, over the targets that every size of the architecture ran (each AUC a "
        "mean over seeds); No transfer is the network fine-tuned from scratch."
    )
    write_text(paths["md"], to_markdown(resolution_table(data, sources)) + f"\n{note}\n")
    save_figure(resolution_figure(data, sources), paths["png"], dpi=150)
    return data
