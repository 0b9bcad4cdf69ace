"""Calibration of Table II's marks: how often each test rejects, by simulation.

For 3, 5 and 10 seeds and a true AUC difference of 0 (the null), 0.03 and 0.05, it simulates
the per-seed paired differences of one comparison and applies three tests at alpha = 0.05:

- `bootstrap`: the hierarchical bootstrap p the marks used before (seeds resampled, then
  each drawn seed's test-image resamples), two-sided, as `medtransfer.stats` computed it;
- `plain t`: the paired t-test over seeds;
- `corrected t`: Nadeau & Bengio's corrected resampled t-test, what the marks use now.

Two worlds:

- `independent`: the issue's simulation. Each seed's difference is the true one plus
  seed-to-seed noise (sd 0.02); its test-image resamples scatter around it with sd 0.005.
- `overlapping splits`: one data set of 1,000 images per repetition, each image with its
  own effect on the difference through the training set (sd such that a 70 % training set's
  mean varies by 0.01) and through the test set (a 20 % test set's mean: 0.005); each seed
  draws its own random 70/10/20 split and adds training noise (sd 0.02). The seeds share
  images, so their differences are correlated, as in the workflow's per-seed splits.

    python benchmarks/calibration.py              # 2,000 repetitions per cell (~2 minutes)
    python benchmarks/calibration.py --reps 200   # a quick look
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_1samp

REPO = Path(__file__).resolve().parents[1]
runpy.run_path(str(REPO / "workflow" / "scripts" / "_checkout.py"))  # this checkout's package

from medtransfer.stats import N_IMAGE_DRAWS, corrected_t_test, hierarchical_bootstrap  # noqa: E402

ALPHA = 0.05
SEED_SD, IMAGE_SD, TRAIN_SD = 0.02, 0.005, 0.01
N_IMAGES = 1000
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
RATIO = FRACTIONS["test"] / FRACTIONS["train"]  # n_test / n_train of every seed's split


def independent_differences(rng: np.random.Generator, n_seeds: int, delta: float) -> np.ndarray:
    return delta + rng.normal(0, SEED_SD, n_seeds)


def overlapping_differences(rng: np.random.Generator, n_seeds: int, delta: float) -> np.ndarray:
    """Per-seed differences on one data set whose seeds draw overlapping random splits."""
    n_train = round(FRACTIONS["train"] * N_IMAGES)
    n_test = round(FRACTIONS["test"] * N_IMAGES)
    through_train = rng.normal(0, TRAIN_SD * np.sqrt(n_train), N_IMAGES)
    through_test = rng.normal(0, IMAGE_SD * np.sqrt(n_test), N_IMAGES)
    differences = np.empty(n_seeds)
    for j in range(n_seeds):
        order = rng.permutation(N_IMAGES)
        train, test = order[:n_train], order[N_IMAGES - n_test :]
        differences[j] = (
            delta + through_train[train].mean() + through_test[test].mean() + rng.normal(0, SEED_SD)
        )
    return differences


WORLDS = {"independent": independent_differences, "overlapping splits": overlapping_differences}


def bootstrap_p(rng: np.random.Generator, differences: np.ndarray) -> float:
    """The old marks' p: hierarchical bootstrap over seeds and their test-image resamples,
    twice the share of draws on the far side of zero (+1 smoothing)."""
    per_seed = [d + rng.normal(0, IMAGE_SD, N_IMAGE_DRAWS) for d in differences]
    values = hierarchical_bootstrap(per_seed, seed=int(rng.integers(2**31)))
    n = len(values)
    below = (np.sum(values <= 0) + 1) / (n + 1)
    above = (np.sum(values >= 0) + 1) / (n + 1)
    return float(min(1.0, 2 * min(below, above)))


def rejection_rates(
    world: str, n_seeds: int, delta: float, reps: int, seed: int = 0, with_bootstrap: bool = True
) -> dict[str, float]:
    """Share of `reps` simulated comparisons each test rejects at ALPHA."""
    rng = np.random.default_rng([seed, n_seeds, round(delta * 1000), len(world)])
    rejected = {"bootstrap": 0, "plain t": 0, "corrected t": 0}
    for _ in range(reps):
        d = WORLDS[world](rng, n_seeds, delta)
        rejected["plain t"] += ttest_1samp(d, 0.0).pvalue < ALPHA
        rejected["corrected t"] += corrected_t_test(d, RATIO)["p"] < ALPHA
        if with_bootstrap:
            rejected["bootstrap"] += bootstrap_p(rng, d) < ALPHA
    if not with_bootstrap:
        del rejected["bootstrap"]
    return {name: count / reps for name, count in rejected.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    print(f"rejection rate at alpha {ALPHA}, {args.reps} repetitions per row")
    print("| world | seeds | true difference | bootstrap (old) | plain t | corrected t (new) |")
    print("|---|---:|---:|---:|---:|---:|")
    for world in WORLDS:
        for delta in (0.0, 0.03, 0.05):
            for n_seeds in (3, 5, 10):
                rates = rejection_rates(world, n_seeds, delta, args.reps)
                print(
                    f"| {world} | {n_seeds} | {delta:.2f} | {rates['bootstrap']:.1%} | "
                    f"{rates['plain t']:.1%} | {rates['corrected t']:.1%} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
