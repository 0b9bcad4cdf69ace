"""The leakage audit stage: duplicates within a task, source images that reappear in a
target, the copies of a run's test images among its source's, and the grid's audit report
(fingerprints: medtransfer.fingerprints; matching: medtransfer.duplicates).
"""

from __future__ import annotations

from typing import Any

from .duplicates import KIND_EXACT, KIND_NEAR, find_duplicates, find_overlap, matches_table
from .fingerprints import Fingerprints


def _task_prints(prints_path: Any, meta: dict[str, Any]) -> Fingerprints:
    return Fingerprints.load(prints_path).take(meta["rows"])


def audit_task(
    meta: dict[str, Any],
    prints_path: Any,
    pairs_path: Any,
    summary_path: Any,
    near_bits: int,
    near_correlation: float,
) -> dict[str, Any]:
    """Every exact and near-duplicate pair within one task (positions in the task's rows)."""
    from .io import write_csv, write_json

    matches = find_duplicates(_task_prints(prints_path, meta), near_bits, near_correlation)
    write_csv(matches_table(matches, meta["files"]), pairs_path)
    keys = meta.get("groups") or []
    configured = {k for k in keys if k is not None}
    summary = {
        "task": meta["task"],
        "n_images": meta["n_images"],
        "exact_pairs": matches.count(KIND_EXACT),
        "near_pairs": matches.count(KIND_NEAR),
        "images_in_a_pair": len(set(matches.a.tolist()) | set(matches.b.tolist())),
        "configured_groups": len(configured),
        "images_without_group": sum(k is None for k in keys) if keys else meta["n_images"],
        "near_bits": near_bits,
        "near_correlation": near_correlation,
    }
    write_json(summary_path, summary)
    return summary


def audit_overlap(
    source_meta: dict[str, Any],
    source_prints: Any,
    target_meta: dict[str, Any],
    target_prints: Any,
    pairs_path: Any,
    summary_path: Any,
    near_bits: int,
    near_correlation: float,
) -> dict[str, Any]:
    """Images of a source task that reappear in a target task (a source network may have been
    trained on a target test image). Records which target positions have a copy."""
    from .io import write_csv, write_json

    matches = find_overlap(
        _task_prints(source_prints, source_meta),
        _task_prints(target_prints, target_meta),
        near_bits,
        near_correlation,
    )
    write_csv(matches_table(matches, source_meta["files"], target_meta["files"]), pairs_path)
    matched = {
        kind: sorted(set(matches.b[matches.kind == kind].tolist()))
        for kind in (KIND_EXACT, KIND_NEAR)
    }
    summary = {
        "source": source_meta["task"],
        "target": target_meta["task"],
        "exact_pairs": matches.count(KIND_EXACT),
        "near_pairs": matches.count(KIND_NEAR),
        "target_images_matched": {kind: len(rows) for kind, rows in matched.items()},
        "target_rows_matched": matched,
    }
    write_json(summary_path, summary)
    return summary


def overlap_message(summary: dict[str, Any]) -> str:
    counts = summary["target_images_matched"]
    return (
        f"source {summary['source']} and target {summary['target']} share images: "
        f"{counts[KIND_EXACT]} target image(s) have an exact and {counts[KIND_NEAR]} a near "
        f"copy among the source's images (results/audit/overlap/{summary['source']}/"
        f"{summary['target']}.csv)"
    )


def copies_in_test(overlap: dict[str, Any] | None, test_rows: list[int], source: str) -> dict:
    """How many of a run's test images have an exact / near copy among its source's images:
    zero for no source; unknown (not audited) for ImageNet, whose images are not here."""
    from .config import IMAGENET, NO_SOURCE

    if source == NO_SOURCE:
        return {"audited": True, KIND_EXACT: 0, KIND_NEAR: 0}
    if overlap is None:
        why = "ImageNet's images are not available" if source == IMAGENET else "no audit input"
        return {"audited": False, KIND_EXACT: None, KIND_NEAR: None, "why": why}
    test = set(test_rows)
    return {
        "audited": True,
        **{kind: len(test & set(rows)) for kind, rows in overlap["target_rows_matched"].items()},
    }


def audit_report(
    task_summaries: list[dict], overlaps: list[dict], splits: list[dict]
) -> tuple[Any, Any, Any]:
    """Three tables: per task, per (source, target), and per (task, seed) split leakage."""
    import pandas as pd

    tasks = pd.DataFrame(task_summaries)
    pairs = pd.DataFrame(
        [
            {
                "source": o["source"],
                "target": o["target"],
                "exact_pairs": o["exact_pairs"],
                "near_pairs": o["near_pairs"],
                "target_images_exact": o["target_images_matched"][KIND_EXACT],
                "target_images_near": o["target_images_matched"][KIND_NEAR],
            }
            for o in overlaps
        ],
        columns=[
            "source",
            "target",
            "exact_pairs",
            "near_pairs",
            "target_images_exact",
            "target_images_near",
        ],
    )
    rows = []
    for split in splits:
        leakage = split.get("leakage", {})
        rows.append(
            {
                "task": split["task"],
                "seed": split["seed"],
                "mode": split["mode"],
                **{f"{s}_groups": n for s, n in split.get("groups", {}).items()},
                **{
                    f"{s}_fraction": f for s, f in split.get("fractions", {}).get("all", {}).items()
                },
                "size_drift": split.get("size_drift"),
                "size_warning": split.get("size_warning"),
                **{
                    f"{what}_{pair}": leakage.get(what, {}).get(pair)
                    for what in ("groups_crossing", "exact", "near")
                    for pair in ("train-test", "val-test")
                },
            }
        )
    return tasks, pairs, pd.DataFrame(rows)


def write_audit_report(
    task_files: list[str], overlap_files: list[str], split_files: list[str], outputs: dict
) -> None:
    """results/audit/: tasks.csv, overlap.csv, splits.csv and summary.md (all three)."""
    from .io import read_json, write_csv, write_text
    from .tables import to_markdown

    tasks, overlaps, splits = audit_report(
        [read_json(f) for f in task_files],
        [read_json(f) for f in overlap_files],
        [read_json(f) for f in split_files],
    )
    write_csv(tasks, outputs["tasks"])
    write_csv(overlaps, outputs["overlaps"])
    write_csv(splits, outputs["splits"])
    sections = [
        ("Duplicates within each task", tasks),
        ("Source images that reappear in a target task", overlaps),
        ("Leakage across the splits of each seed", splits),
    ]
    write_text(
        outputs["md"],
        "\n".join(
            f"## {title}\n\n{to_markdown(t) if len(t) else '(none)'}\n" for title, t in sections
        ),
    )
