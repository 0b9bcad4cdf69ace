"""The documentation stays navigable: a README read in minutes, links that lead somewhere."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO

DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = ["README.md", "config/README.md", "benchmarks/README.md",
         *(p.relative_to(REPO).as_posix() for p in DOCS)]  # fmt: skip


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_leads_to_a_file(page):
    text = (REPO / page).read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if not t.startswith("http")
               and not ((REPO / page).parent / t).exists()]  # fmt: skip
    assert not missing, missing


def test_the_readme_links_every_page_that_moved_out_of_it():
    readme = (REPO / "README.md").read_text()
    for page in ("docs/outputs.md", "docs/methods.md", "config/README.md",
                 "docs/troubleshooting.md", "docs/showcase.md", "docs/paper.md"):  # fmt: skip
        assert f"]({page})" in readme, page


def test_the_readme_table_is_the_committed_showcase_table():
    """The Table II the README shows is the committed run's, row for row."""
    committed = (REPO / "docs" / "showcase" / "table2.md").read_text().splitlines()
    shown = [line for line in (REPO / "README.md").read_text().splitlines()
             if line.startswith("|")]  # fmt: skip
    assert shown[:6] == committed[:6]
