"""Figures whose layout cannot be misread: legends outside the data, tick labels inside the
figure, every bar group under its own tick (rendered with matplotlib, measured in pixels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from medtransfer.analysis import gain_scatter  # noqa: E402
from medtransfer.compare import architectures_figure  # noqa: E402
from medtransfer.reporting import figure3_plot, source_colour  # noqa: E402


def drawn_points(ax) -> np.ndarray:
    """Display coordinates of what an axes shows: points along every line (50 per segment),
    scatter points, the top centre of every bar."""
    points = [np.empty((0, 2))]
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        for a, b in zip(xy[:-1], xy[1:], strict=True):
            points.append(a + np.linspace(0, 1, 50)[:, None] * (b - a))
        points.append(xy)
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if len(offsets):
            points.append(collection.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        box = patch.get_window_extent()
        points.append(np.array([[(box.x0 + box.x1) / 2, box.y1]]))
    stacked = np.concatenate(points)
    return stacked[np.isfinite(stacked).all(axis=1)]


def drawn_tick_labels(ax) -> list:
    """The tick labels matplotlib draws: those of ticks inside the axis' view limits (it
    keeps labels for locations beyond them, which it does not draw)."""
    labels = []
    for axis in (ax.xaxis, ax.yaxis):
        low, high = sorted(axis.get_view_interval())
        margin = 1e-9 * max(abs(low), abs(high), 1.0)
        labels += [tick.label1 for tick in axis.get_major_ticks()
                   if low - margin <= tick.get_loc() <= high + margin]  # fmt: skip
    return labels


def layout_problems(fig) -> list[str]:
    """What overlaps: a legend over anything an axes draws, a tick label outside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    problems = []
    for ax in fig.axes:
        shown = drawn_points(ax)
        for legend in [ax.get_legend(), *fig.legends]:
            if legend is None:
                continue
            box = legend.get_window_extent(renderer)
            inside = ((shown[:, 0] > box.x0) & (shown[:, 0] < box.x1)
                      & (shown[:, 1] > box.y0) & (shown[:, 1] < box.y1))  # fmt: skip
            if inside.any():
                problems.append(f"legend over the data of '{ax.get_title()}'")
        for label in drawn_tick_labels(ax):
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
    bars = data[data.source != "No transfer"]
    one_target = len(bars) > 0 and (bars.n_targets == 1).all()
    # no error bars are drawn over one target: the axis must not promise them
    assert ("sd over targets" in ax.get_ylabel()) == (not one_target)


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


def test_the_estimates_figure_colours_sources_in_the_grids_order_as_figure3_does():
    """Estimates arrive sorted by name (catdog, chest, natural); coloured in that order,
    natural took catdog's hue of Figure 3 and a reader comparing the two misread them. A
    panel whose scores all tie said nothing of it (every point at 0 over crowded ticks)."""
    from medtransfer.ranking import estimate_plot

    grid = ["none", "natural", "catdog", "chest"]
    estimates = pd.DataFrame([{"estimator": e, "source": s, "target": "isic",
                               "score": float(i) * (e == "logme"), "ft_gain": 0.01 * i}
                              for e in ("hscore", "logme")
                              for i, s in enumerate(sorted(grid[1:]))])  # fmt: skip
    fig = estimate_plot(estimates, grid)
    tied, ranked = fig.axes[:2]  # H-score's scores tie (all 0 standardised): it says so
    assert "tie" in tied.get_xlabel() and not tied.get_xticks().size
    assert "standardised" in ranked.get_xlabel() and ranked.get_xticks().size
    (points,) = ranked.collections
    drawn = [tuple(c[:3]) for c in points.get_facecolor()]
    assert drawn == [tuple(source_colour(grid, s)[:3]) for s in sorted(grid[1:])]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == grid[1:], "the legend lists the sources in the grid's order"


def test_the_estimates_figure_with_one_source_per_target_says_it_ranks_nothing():
    """The small grid's case (natural alone on each target): its panels said the sources'
    scores tie, where there was nothing to tie with."""
    from medtransfer.ranking import estimate_plot

    estimates = pd.DataFrame([{"estimator": "logme", "source": "natural", "target": t,
                               "score": 1.0 + i, "ft_gain": 0.01 * i}
                              for i, t in enumerate(["isic", "blood"])])  # fmt: skip
    ax = estimate_plot(estimates, ["none", "natural"]).axes[0]
    assert "one source per target" in ax.get_xlabel() and "tie" not in ax.get_xlabel()
    assert not ax.get_xticks().size


def test_a_source_has_one_colour_in_every_figure():
    """Figure 3 labels sources ('No transfer', 'ImageNet'), the others name them: one hue."""
    by_name = ["none", "imagenet", "natural", "catdog"]
    labelled = ["No transfer", "ImageNet", "natural", "catdog"]
    for name, label in zip(by_name, labelled, strict=True):
        for kind in ("FE", "FT"):
            assert source_colour(by_name, name, kind) == source_colour(labelled, label, kind)
    assert source_colour(by_name, "natural", "FE") != source_colour(by_name, "natural", "FT")


def hand_made_runs() -> list:
    from medtransfer.runs import RunRecord

    from .test_runs import record

    rng = np.random.default_rng(0)
    runs = []
    for source in ("none", "natural", "catdog"):
        for seed in (0, 1):
            labels = rng.integers(0, 2, 40)
            positive = labels + rng.normal(0, 0.8, 40)
            scores = np.column_stack([-positive, positive])
            runs.append(RunRecord.from_json(record(source=source, seed=seed, method="ft-svm",
                                             test_labels=labels.tolist(),
                                             test_scores=scores.tolist())))  # fmt: skip
    return runs


def test_every_figure_of_a_grid_keeps_legends_off_the_data_and_labels_inside():
    """Each figure a grid draws, from hand-made inputs of the small grid's shape (three
    sources, two targets, 12 fine-tuning runs, every estimator, four stages)."""
    from medtransfer.analysis import learning_curve_plot
    from medtransfer.probes import probe_plots
    from medtransfer.ranking import estimate_plot
    from medtransfer.target_report import confusion_plot, roc_plot, training_plot

    runs = hand_made_runs()
    epochs = np.arange(1, 9)
    histories = {f"{s}/all/seed{k}": pd.DataFrame({
        "epoch": epochs, "loss": 1.5 / epochs + 0.01 * k, "val_loss": 1.6 / epochs + 0.2,
        "accuracy": 1 - 0.5 / epochs, "val_accuracy": 0.9 - 0.5 / epochs})
        for s in ("none", "natural", "catdog", "chest") for k in range(3)}  # fmt: skip
    sources, targets = ["none", "natural", "catdog", "chest"], ["isic", "blood"]
    estimates = pd.DataFrame([
        {"estimator": e, "source": s, "target": t, "score": i + 0.3 * j + (e == "gbc"),
         "ft_gain": 0.02 * (i - 1.5) + 0.01 * j}
        for e in ("logme", "hscore", "gbc", "nleep") for i, s in enumerate(sources)
        for j, t in enumerate(targets)])  # fmt: skip
    cka = pd.DataFrame([{"source": s, "variant": "all", "seed": k, "depth": d,
                         "cka": 1 - 0.15 * d + 0.01 * k}
                        for s in sources[1:] for k in range(3) for d in range(1, 6)])  # fmt: skip
    knn = pd.DataFrame([{"source": s, "depth": d, "accuracy": 0.5 + 0.05 * d + 0.02 * i}
                        for i, s in enumerate(sources) for d in range(1, 6)])  # fmt: skip
    curves = pd.DataFrame([{"target": "isic", "source": s, "method": m, "fraction": f,
                            "mean_auc": 0.6 + 0.1 * f, "std_auc": 0.02}
                           for s in ("none", "natural") for m in ("fe-svm", "ft-svm")
                           for f in (0.25, 0.5, 1.0)])  # fmt: skip
    figures = {
        "roc": roc_plot(runs),
        "confusion": confusion_plot(runs),
        "training curves": training_plot(histories),
        "estimates": estimate_plot(estimates),
        "learning curves": learning_curve_plot(curves),
        **dict(zip(("cka", "knn"), probe_plots(cka, knn), strict=True)),
    }
    problems = {name: layout_problems(fig) for name, fig in figures.items()}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_layout_check_finds_a_legend_over_bars_and_lines():
    """The check itself can fail: a legend drawn over the bars and a line is reported."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([0, 1, 2], [0.9, 0.95, 0.9], label="bars")
    ax.plot([0, 2], [0.5, 0.5], label="line")
    ax.legend(loc="center")
    assert layout_problems(fig) == ["legend over the data of ''"]
    plt.close(fig)
