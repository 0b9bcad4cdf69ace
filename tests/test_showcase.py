"""The showcase page (docs/showcase.md) reports the committed records of the showcase run
(docs/showcase/): its two headline averages are recomputed here from the run JSONs."""

import re

import numpy as np
import pytest

from medtransfer.runs import group_runs, read_runs

from .conftest import REPO

SHOWCASE = REPO / "docs" / "showcase"


def headlines(fe: str = "fe-svm", ft: str = "ft-svm") -> dict[str, float]:
    """(a) FT of a transfer source minus No transfer, (b) FT minus FE of a transfer source:
    each a mean over seeds per (target, source), then over sources, then over targets."""
    grouped = group_runs(read_runs(sorted(SHOWCASE.glob("runs/*/*/*/seed*.json"))))

    def mean_auc(key):
        return float(np.mean([r.auc_macro for r in grouped[key]]))

    targets = sorted({t for t, _, _ in grouped})
    gain, ft_minus_fe = [], []
    for target in targets:
        sources = sorted({s for t, s, _ in grouped if t == target and s != "none"})
        baseline = mean_auc((target, "none", ft))
        gain.append(np.mean([mean_auc((target, s, ft)) - baseline for s in sources]))
        ft_minus_fe.append(
            np.mean([mean_auc((target, s, ft)) - mean_auc((target, s, fe)) for s in sources])
        )
    return {"transfer": float(np.mean(gain)), "ft_fe": float(np.mean(ft_minus_fe))}


def test_showcase_headlines_are_recomputed_from_the_showcase_runs():
    if not SHOWCASE.is_dir():
        pytest.skip("no showcase run committed")
    readme = (REPO / "docs" / "showcase.md").read_text()
    found = re.search(
        r"\(a\) transfer FT − No transfer: ([+−-]\d\.\d{3}).*?\(b\) FT − FE: ([+−-]\d\.\d{3})",
        readme,
        re.S,
    )
    assert found, "the showcase page's headlines"
    written = [float(v.replace("−", "-")) for v in found.groups()]
    computed = headlines()
    assert written == pytest.approx([computed["transfer"], computed["ft_fe"]], abs=0.0005)


# the VGG16 part, and EfficientNet-Lite0 from none and from ImageNet
PARTS = [SHOWCASE, SHOWCASE / "efficientnet_lite0"]


@pytest.mark.parametrize("part", PARTS, ids=["vgg16", "efficientnet_lite0"])
def test_the_committed_table_is_the_runs_table(part):
    if not part.is_dir():
        pytest.skip("no showcase run committed")
    table = (part / "table2.md").read_text()
    grouped = group_runs(read_runs(sorted(part.glob("runs/*/*/*/seed*.json"))))
    for target in ("isic", "blood"):
        mean = np.mean([r.auc_macro for r in grouped[(target, "none", "ft-svm")]])
        assert f"| {target} | {mean:.3f} ±" in table


def test_every_committed_run_converged():
    runs = read_runs(sorted(SHOWCASE.glob("**/runs/*/*/*/seed*.json")))
    assert len(runs) == 120  # 80 VGG16, 40 EfficientNet-Lite0
    assert all(r.provenance["classifier_converged"] for r in runs)


def test_readme_imagenet_headline_is_recomputed_from_the_lite0_runs():
    grouped = group_runs(read_runs(sorted(PARTS[1].glob("runs/*/*/*/seed*.json"))))

    def mean_auc(key):
        return float(np.mean([r.auc_macro for r in grouped[key]]))

    gain = np.mean([mean_auc((t, "imagenet", "ft-svm")) - mean_auc((t, "none", "ft-svm"))
                    for t in ("isic", "blood")])  # fmt: skip
    readme = (REPO / "docs" / "showcase.md").read_text()
    found = re.search(
        r"\(c\) ImageNet FT − No transfer, EfficientNet-Lite0: ([+−-]\d\.\d{3})", readme
    )
    assert found, "the showcase page's ImageNet headline"
    assert float(found[1].replace("−", "-")) == pytest.approx(gain, abs=0.0005)


@pytest.mark.slow  # recomputes every comparison of the committed runs: 17 s
@pytest.mark.parametrize("part", PARTS, ids=["vgg16", "efficientnet_lite0"])
def test_the_committed_marks_are_the_calibrated_tests_on_the_committed_runs(part):
    """stats.csv (and so Table II's arrows) recomputed from the run records with today's
    test."""
    import pandas as pd

    from medtransfer.stats import comparisons

    if not part.is_dir():
        pytest.skip("no showcase run committed")
    runs = read_runs(sorted(part.glob("runs/*/*/*/seed*.json")))
    computed = comparisons(group_runs(runs), "fe-svm", "ft-svm").set_index(
        ["target", "source", "comparison"]
    )
    committed = pd.read_csv(part / "stats.csv").set_index(["target", "source", "comparison"])
    assert set(committed.test) == {"corrected resampled t-test (Nadeau & Bengio 2003)"}
    assert computed["mark"].to_dict() == committed["mark"].to_dict()
    table = (part / "table2.md").read_text().split("\n\n")[0]  # not the footnotes
    shown = committed.drop(index="none", level="source")  # Table II has no column for none FE
    assert table.count("↑") == int((shown["mark"] == 1).sum())
    assert table.count("↓") == int((shown["mark"] == -1).sum())
    assert computed["p_corrected_t"].to_numpy() == pytest.approx(
        committed.loc[computed.index, "p_corrected_t"].to_numpy(), abs=1e-6
    )


def test_readme_demo_convergence_counts_are_the_committed_demo_records():
    """docs/demo/runs.csv: one row per run record of the 2026-11-30 clean-clone run of the
    demo with its extras (config/demo-full.yaml, then config.yaml)."""
    import pandas as pd

    runs = pd.read_csv(REPO / "docs" / "demo" / "runs.csv")
    counts = runs.groupby("architecture").size().to_dict()
    readme = " ".join((REPO / "docs" / "showcase.md").read_text().split())
    found = re.search(
        r"every one of its (\d+) run records \((\d+) VGG16, (\d+) EfficientNetB0", readme
    )
    assert found, "the showcase page's demo convergence sentence"
    assert [int(v) for v in found.groups()] == [
        len(runs),
        counts["vgg16"],
        counts["efficientnetb0"],
    ]
    assert runs.converged.all()
