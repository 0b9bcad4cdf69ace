"""Figures whose layout cannot be misread: legends outside the data, tick labels inside the
figure, every bar group under its own tick (rendered with matplotlib, measured in pixels)."""

from __future__ import annotations

import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from medtransfer.analysis import gain_scatter  # noqa: E402
from medtransfer.compare import architectures_figure  # noqa: E402
from medtransfer.reporting import figure3_plot, source_colour  # noqa: E402


def layout_problems(fig) -> list[str]:
    """What overlaps: a legend over an axes' data area, a tick label outside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    problems = []
    for ax in fig.axes:
        area = ax.get_window_extent(renderer)
        for legend in [ax.get_legend(), *fig.legends]:
            if legend is not None and legend.get_window_extent(renderer).overlaps(area):
                problems.append(f"legend over the data of '{ax.get_title()}'")
        for label in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
            box = label.get_window_extent(renderer)
            if label.get_text() and not (
                figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 + 0.5
                and figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1 + 0.5
            ):  # fmt: skip
                problems.append(f"tick label {label.get_text()!r} outside the figure")
    return problems


def figure3_rows(sources: dict[str, int], kinds=("FE", "FT")) -> pd.DataFrame:
    rows = [{"source": "No transfer", "kind": "FT", "mean_auc": 0.8, "std_over_targets": 0.1,
             "n_targets": 3, "no_transfer_same_targets": 0.8}]  # fmt: skip
    for source, n in sources.items():
        rows += [{"source": source, "kind": kind, "mean_auc": 0.2 + 0.1 * len(rows),
                  "std_over_targets": 0.05, "n_targets": n, "no_transfer_same_targets": 0.7}
                 for kind in kinds]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "data",
    [
        figure3_rows({"natural": 3, "catdog": 3, "chest x-ray (long name)": 2}),
        figure3_rows({"natural": 1}, kinds=("FT",)),  # no FE bars: no FE in the legend
        figure3_rows({}),  # nothing to compare
    ],
)
def test_figure3_layout(data):
    fig = figure3_plot(data)
    assert layout_problems(fig) == []
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
    has_fe = any(text.startswith("FE") for text in legend)
    assert has_fe == ("FE" in set(data[data.source != "No transfer"].kind))
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert all("target" in t for t in ticks)  # each mean says how many targets it covers


def test_architectures_figure_layout_and_bars_under_their_ticks():
    data = pd.DataFrame(
        [
            {"architecture": "vgg16", "source": s, "kind": k, "mean_auc": 0.7, "n_targets": 3}
            for s in ("none", "natural", "catdog")
            for k in ("FE", "FT")
            if not (s == "none" and k == "FE")
        ]
        + [
            {
                "architecture": "efficientnetb0",
                "source": s,
                "kind": "FT",
                "mean_auc": 0.6,
                "n_targets": 1,
            }
            for s in ("none", "natural")
        ]  # fmt: skip
    )
    fig = architectures_figure(data, ["vgg16", "efficientnetb0"], ["none", "natural", "catdog"])
    assert layout_problems(fig) == []
    ax = fig.axes[0]
    for tick, position in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True):
        centres = [p.get_x() + p.get_width() / 2 for p in ax.patches
                   if abs(p.get_x() + p.get_width() / 2 - position) < 0.5]  # fmt: skip
        assert abs(sum(centres) / len(centres) - position) < 1e-9, tick.get_text()
    # FE light and FT dark of one hue per source, No transfer grey
    legend = ax.get_legend()
    pairs = zip(legend.get_texts(), legend.legend_handles, strict=True)
    colours = {text.get_text(): handle.get_facecolor() for text, handle in pairs}
    assert colours["natural FE"] != colours["natural FT"] != colours["catdog FT"]


def gains_frame(sources: list[str], targets: list[str]) -> pd.DataFrame:
    rows = [{"source": s, "target": t, "frechet_distance": 10.0 + i + 0.3 * j,
             "ft_gain": 0.01 * (i - j), "fe_gain": -0.01 * (i + j)}
            for i, s in enumerate(sources) for j, t in enumerate(targets)]  # fmt: skip
    return pd.DataFrame(rows)


def test_similarity_scatter_has_no_overlapping_labels_and_the_sources_colours():
    """Text beside each point overlapped; now colour = source, shape = target, one legend."""
    sources = ["none", "imagenet", "natural", "catdog", "chest"]
    frame = gains_frame(sources[1:], ["isic", "blood", "chest"])
    fig = gain_scatter(frame, "frechet_distance", "distance", "title", sources)
    assert layout_problems(fig) == []
    assert not [t for ax in fig.axes for t in ax.texts], "no text labels beside points"
    points = fig.axes[0].collections
    colours = {tuple(p.get_facecolor()[0][:3]) for p in points}
    assert colours == {tuple(source_colour(sources, s)[:3]) for s in sources[1:]}


def test_a_source_has_one_colour_in_every_figure():
    """Figure 3 labels sources ('No transfer', 'ImageNet'), the others name them: one hue."""
    by_name = ["none", "imagenet", "natural", "catdog"]
    labelled = ["No transfer", "ImageNet", "natural", "catdog"]
    for name, label in zip(by_name, labelled, strict=True):
        for kind in ("FE", "FT"):
            assert source_colour(by_name, name, kind) == source_colour(labelled, label, kind)
    assert source_colour(by_name, "natural", "FE") != source_colour(by_name, "natural", "FT")
