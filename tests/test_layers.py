"""The package's layers point one way: each module imports only from its own layer or the
ones below it, and no imports go round in a circle (function-level imports included)."""

import ast
import subprocess
import sys

from .conftest import REPO

PACKAGE = REPO / "src" / "medtransfer"

# bottom to top; docs/architecture.md describes the same layers
LAYERS = [
    ("foundation", {"errors", "io", "tables", "jobs", "runtime", "warm", "snakemake_locks"}),
    ("declarations", {"architectures", "config", "imagenet", "metrics"}),
    (
        "data",
        {"download", "adapters", "fingerprints", "duplicates", "audit", "data", "splits", "grid"},
    ),
    (
        "networks",
        {
            "legacy_torch",
            "pretrained",
            "lite0",
            "models",
            "training",
            "classifiers",
            "filters",
            "spectrum",
            "transferability",
        },
    ),
    ("statistics", {"runs", "stats", "estimates", "adaptive"}),
    (
        "reports",
        {"reporting", "compare", "target_report", "analysis", "ranking", "probes", "resolution"},
    ),
]
LAYER_OF = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}


def package_imports(path) -> set[str]:
    """The package modules a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("medtransfer."):
                found.add(node.module.split(".")[1])
    return found


def import_graph() -> dict[str, set[str]]:
    return {
        path.stem: package_imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"
    }


def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYER_OF)


def test_no_module_imports_one_above_it():
    upward = [
        f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {used} ({LAYERS[LAYER_OF[used]][0]})"
        for module, used_set in import_graph().items()
        for used in used_set
        if LAYER_OF[used] > LAYER_OF[module]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join([*trail, module])
        state[module] = "open"
        for used in sorted(graph[module]):
            visit(used, [*trail, module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_the_layer_graph_finds_an_upward_import(tmp_path):
    """The check itself can fail: an import of a higher layer is seen."""
    module = tmp_path / "audit.py"
    module.write_text("def f():\n    from .reporting import save_figure\n")
    assert package_imports(module) == {"reporting"}


def test_grid_needs_no_snakemake_and_no_tensorflow():
    code = (
        "import sys, medtransfer.grid; "
        "print([m for m in ('snakemake', 'tensorflow', 'keras') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
