"""The documentation stays navigable: a README read in minutes, links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

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
    if "here none does" in (REPO / "README.md").read_text():  # what the text says of marks
        assert not any("↑" in line or "↓" in line for line in shown[:6])


def newest_record_path(kind: str) -> Path:
    """The latest committed record of a kind of run (`benchmarks/records/KIND-DATE.txt`):
    the README quotes the newest, and an older one is kept only in git's history."""
    (path,) = sorted((REPO / "benchmarks" / "records").glob(f"{kind}-2*.txt"))[-1:]
    return path


def newest_record(kind: str) -> str:
    return newest_record_path(kind).read_text()


def record_date(kind: str) -> str:
    """The date in the newest record's name (`KIND-YYYY-MM-DD.txt`)."""
    return newest_record_path(kind).stem[-len("YYYY-MM-DD") :]


def test_the_readme_timings_are_those_of_the_committed_records():
    """Each time the README quotes is in a committed log of the run that measured it."""
    readme = " ".join((REPO / "README.md").read_text().split())
    ci, fast = newest_record("ci"), newest_record("fast-loop")
    lite0 = (REPO / "docs" / "showcase" / "efficientnet_lite0" / "timing.txt").read_text()
    tests, minutes = re.search(r"(\d+) tests, (\d+) min on a clean clone", readme).groups()
    passed, seconds = re.search(r"(\d+) passed, .* in ([\d.]+)s", ci).groups()
    assert (tests, minutes) == (passed, str(int(float(seconds) // 60)))
    assert f"{minutes} min on a clean clone on {record_date('ci')}" in readme
    tests, minutes = re.search(r"the fast loop (\d+) tests, ([\d.]+) min", readme).groups()
    passed, seconds = re.search(r"(\d+) passed, .* in ([\d.]+)s", fast).groups()
    assert tests == passed and float(minutes) == round(float(seconds) / 60, 1)
    minutes = re.search(r"that part alone took (\d+) min", readme)[1]
    assert int(minutes) == round(int(re.search(r"wall=(\d+)", lite0)[1]) / 60)


def test_the_readme_says_what_the_other_configs_and_the_ci_record_hold():
    import yaml

    from medtransfer.architectures import ARCHITECTURES

    readme = " ".join((REPO / "README.md").read_text().split())
    showcase = yaml.safe_load((REPO / "config" / "showcase.yaml").read_text())
    assert (f"VGG16 at {showcase['image_size']} px on the sample data, "
            f"{len(showcase['seeds'])} seeds") in readme  # fmt: skip
    sizes = yaml.safe_load((REPO / "config" / "resolution.yaml").read_text())["image_sizes"]
    assert f"MedMNIST+ at {sizes[0]}, {sizes[1]} and {sizes[2]} px" in readme
    assert len(ARCHITECTURES) == 6 and "six architectures" in readme
    wall = int(re.search(r"wall=(\d+)", newest_record("ci"))[1])
    assert f"{round(wall / 60)} min with the installs" in readme


def assert_the_pages_quote(record: str) -> str:
    """The README's rounded minutes and the showcase page's exact time of a committed
    clean-clone run (`wall=S jobs=N` in its record); returns the README."""
    wall, jobs = (int(v) for v in re.search(r"wall=(\d+) jobs=(\d+)", record).groups())
    readme = " ".join((REPO / "README.md").read_text().split())
    showcase = " ".join((REPO / "docs" / "showcase.md").read_text().split())
    assert f"{jobs} jobs, {round(wall / 60)} min on this project's 2-core machine" in readme
    assert f"{jobs} jobs in {wall // 60} min {wall % 60} s" in showcase
    return readme


def test_the_readme_says_what_the_demo_holds_and_took():
    import yaml

    demo = yaml.safe_load((REPO / "config.yaml").read_text())
    readme = assert_the_pages_quote(newest_record("demo"))
    offline = [s for s in demo["sources"] if s != "imagenet"]  # its weights: not offline
    named = f"sources {', '.join(offline[:-1])} and {offline[-1]}, FE and FT"
    assert f"{named}, {len(demo['seeds'])} seeds" in readme


def test_the_readme_and_showcase_page_say_what_the_showcase_took():
    readme = assert_the_pages_quote(newest_record("showcase"))
    assert f"min on this project's 2-core machine on {record_date('showcase')}" in readme
    first = (REPO / "benchmarks" / "records" / "showcase-2026-11-30.txt").read_text()
    assert "120 of 120 run records equal the committed ones" in first
    wall = int(re.search(r"wall=(\d+)", first)[1])  # the slower day's, quoted beside
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"and {round(wall / 60)} min on a slower day" in readme
    assert f"jobs in {wall // 60} min {wall % 60} s" in " ".join(
        (REPO / "docs" / "showcase.md").read_text().split()
    )
    config = (REPO / "config" / "showcase.yaml").read_text()
    comments = " ".join(word for word in config.split() if word != "#")
    record = re.search(r"wall=(\d+) jobs=(\d+)", newest_record("showcase"))
    newest, jobs = int(record[1]), int(record[2])
    quoted = (
        f"{jobs} jobs in {round(newest / 60)} min on a 2-core CPU "
        f"({record_date('showcase')}; {round(wall / 60)} min on a slower day"
    )
    assert quoted in comments  # config/showcase.yaml's header
    assert f"the whole grid took {round(wall / 60)} min" in comments
    equal = re.search(
        r"(\d+) of 120 run records equal the committed ones", newest_record("showcase")
    )
    showcase = " ".join((REPO / "docs" / "showcase.md").read_text().split())
    assert f"{equal[1]} of 120 AUCs are equal" in showcase
    # the run on another host the same day, appended to the record
    wall, same = re.search(r"rc=0 wall (\d+) s .*?(\d+) of 120 run records equal the committed",
                           newest_record("showcase")).groups()  # fmt: skip
    wall = int(wall)
    assert f"({round(wall / 60)} min on another host that day, every run record equal" in readme
    assert same == "120"
    assert f"272 jobs in {wall // 60} min {wall % 60} s, and **all 120" in showcase


def test_the_readme_says_what_the_quick_start_config_holds():
    import yaml

    demo = yaml.safe_load((REPO / "config" / "demo-medmnist.yaml").read_text())
    readme = " ".join((REPO / "README.md").read_text().split())
    downloads = {spec["download"] for spec in demo["datasets"].values()}
    assert len(downloads) == 4 and all(d.endswith("@28") for d in downloads)
    assert "four MedMNIST files at 28 px" in readme
    assert f"resizes them to the grid's {demo['image_size']} px" in readme
    assert f"FE and FT; {len(demo['seeds'])} seeds" in readme


def cited_names(page: str) -> set[str]:
    """The `module` and `module.name` (or `Class.name`) spans a page cites in code style."""
    text = (REPO / page).read_text()
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)`", text))


def test_the_architecture_page_cites_only_what_exists():
    import importlib

    modules = {p.stem for p in (REPO / "src" / "medtransfer").glob("*.py")} - {"__init__"}
    loaded = {m: importlib.import_module(f"medtransfer.{m}") for m in modules}
    classes = {
        name: value
        for module in loaded.values()
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__
    }
    cited = cited_names("docs/architecture.md")
    missing = []
    files = {"npz", "npy", "json", "csv", "md", "png", "pdf", "tex", "h5", "keras", "yaml"}
    for name in cited:
        head, _, attribute = name.partition(".")
        if attribute in files:  # a file such as `fingerprints.npz`, not a module's name
            continue
        owner = loaded.get(head) or classes.get(head)
        if attribute and owner is not None and not hasattr(owner, attribute):
            missing.append(name)
    assert not missing, missing
    assert modules <= cited, sorted(modules - cited)  # every module has its place


def test_the_workflow_catalog_file_names_the_mandatory_flag_and_the_env():
    import yaml

    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert "data_root=" in usage["mandatory-flags"]["flags"]
    assert usage["software-stack-deployment"]["conda"] is True
    assert (REPO / "envs" / "medtransfer.yaml").is_file() and usage["report"] is True


def test_the_benchmark_page_quotes_the_bare_record_with_startup_apart():
    """The workflow-against-bare table with start-up apart is the newest record's, row for
    row (rounded as the page rounds)."""
    record = newest_record("bare").split("ratio_less_startup")[-1]
    page = " ".join((REPO / "benchmarks" / "README.md").read_text().split())
    for line in record.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        rule, jobs, ours, startup, bare, ratio, less = line.split()
        row = (f"| {rule} ({int(float(jobs))}) | {float(ours):.1f} | {float(startup):.1f} | "
               f"{float(bare):.1f} |")  # fmt: skip
        assert row in page, row
        assert f"{float(less):.2f}" in page
