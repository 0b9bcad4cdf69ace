"""Tables as text: Markdown and LaTeX (booktabs), cells written as they are given."""

from __future__ import annotations

import pandas as pd


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join(["---"] + [":---:"] * (len(table.columns) - 1)) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join([header, rule, *body]) + "\n"


def _latex_escape(text: str) -> str:
    return (
        str(text)
        .replace("\\", r"\textbackslash{}")
        .replace("_", r"\_")
        .replace("&", r"\&")
        .replace("%", r"\%")
        .replace("±", r"$\pm$")
        .replace("↑", r"$\uparrow$")
        .replace("↓", r"$\downarrow$")
        .replace("α", r"$\alpha$")
        .replace("←", r"$\leftarrow$")
        .replace("‡", r"$\ddagger$")
    )


def to_latex(table: pd.DataFrame, caption: str) -> str:
    spec = "l" + "c" * (len(table.columns) - 1)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_latex_escape(caption)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(v) for v in row) + r" \\" for row in table.to_numpy()]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
