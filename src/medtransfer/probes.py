"""Feature-reuse probes: CKA between each source network and its fine-tuned network per
stage (read from the finetune jobs' files) and the frozen stages' k-NN accuracy, as figures."""

from __future__ import annotations

import pandas as pd

from .grid import FINETUNED, parse_path
from .io import read_csv


def write_probe_figures(cka: pd.DataFrame, knn: pd.DataFrame, cka_png: str, knn_png: str) -> None:
    from .reporting import save_figure

    for fig, path in zip(probe_plots(cka, knn), (cka_png, knn_png), strict=True):
        save_figure(fig, path)


def probe_plots(cka: pd.DataFrame, knn: pd.DataFrame) -> tuple:
    """CKA against depth, one panel per source (a line per fine-tuning variant and seed), and
    k-NN accuracy of each frozen stage against depth, a line per source; legends beside the
    data, not over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .reporting import source_colour

    sources = sorted(cka.source.unique()) if len(cka) else []
    fig, axes = plt.subplots(
        1, max(1, len(sources)), figsize=(3.6 * max(1, len(sources)), 3.2), squeeze=False
    )
    for ax, source in zip(axes.flat, sources, strict=False):
        for (variant, seed), line in cka[cka.source == source].groupby(["variant", "seed"]):
            ax.plot(line.depth, line.cka, marker="o", label=f"tuned: {variant}, seed {seed}")
        ax.set(title=f"source: {source}", xlabel="stage",
               ylabel="debiased CKA, source vs fine-tuned")  # fmt: skip
        ax.set_ylim(min(0.0, float(cka.cka.min()) - 0.05), 1.05)  # debiased CKA can dip below 0
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # stages are whole numbers
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False,
                  ncol=2)  # fmt: skip
    fig.tight_layout()
    cka_fig = fig
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if len(knn):
        mean = knn.groupby(["source", "depth"], as_index=False)["accuracy"].mean()
        sources = list(mean.source.unique())
        for source, line in mean.groupby("source"):
            ax.plot(line.depth, line.accuracy, marker="o", label=source,
                    color=source_colour(sources, source))  # fmt: skip
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set(xlabel="stage", ylabel="k-NN test accuracy (frozen),\nmean over seeds",
           title="k-NN probe")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return cka_fig, fig


def read_cka(paths: list[str]) -> pd.DataFrame:
    """The finetune jobs' cka.csv files, each row labelled with its source, variant and seed
    (from its path: grid.FINETUNED)."""
    frames = []
    for path in paths:
        names = parse_path(f"{FINETUNED}cka.csv", path)
        frames.append(
            read_csv(path).assign(
                target=names["target"],
                source=names["source"],
                variant=names["variant"],
                seed=int(names["seed"]),
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=[
                "depth",
                "layer",
                "cka",
                "n_images",
                "estimator",
                "target",
                "source",
                "variant",
                "seed",
            ]  # fmt: skip
        )
    )
