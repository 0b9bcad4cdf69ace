"""The experiment configuration: validation and method names (the grid it asks for:
medtransfer.grid)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .architectures import DEFAULT_ARCHITECTURE, UnknownArchitecture, architecture, sized_name
from .errors import ConfigError

NO_SOURCE = "none"
IMAGENET = "imagenet"
SPECIAL_SOURCES = (NO_SOURCE, IMAGENET)
DATA_ROOT_VARIABLE = "MEDTRANSFER_DATA_ROOT"  # data_root where no config or --config sets it

FEATURE_CLASSIFIERS = ("svm", "logreg", "mlp1", "mlp2")
PIXEL_CLASSIFIERS = ("dt", "rf")
_FT_PATTERN = re.compile(
    r"^ft(?:-(?P<freeze>last|first|firstlast))?(?P<randhead>-randhead)?-(?P<clf>[a-z0-9]+)$"
)


@dataclass(frozen=True)
class Method:
    """One way of turning a source model and a target task into scores.

    kind: 'fe' (frozen features), 'ft' (fine-tuned network) or 'pixels' (no network).
    variant: the fine-tuning variant ('all', 'last', 'first', 'firstlast', each optionally
    with '-randhead'), shared by every classifier scored on the same fine-tuned network.
    """

    name: str
    kind: str
    classifier: str
    variant: str | None = None


def parse_method(name: str) -> Method:
    """Parse a method name such as 'fe-svm', 'ft-last-svm', 'ft-randhead-head', 'pixels-rf'."""
    kind, _, rest = name.partition("-")
    if kind == "fe" and rest in FEATURE_CLASSIFIERS:
        return Method(name, "fe", rest)
    if kind == "pixels" and rest in PIXEL_CLASSIFIERS:
        return Method(name, "pixels", rest)
    match = _FT_PATTERN.match(name)
    if match and match["clf"] in (*FEATURE_CLASSIFIERS, "head"):
        variant = (match["freeze"] or "all") + (match["randhead"] or "")
        return Method(name, "ft", match["clf"], variant)
    raise ConfigError(
        f"methods: unknown method {name!r}; use fe-<clf> "
        f"(clf in {', '.join(FEATURE_CLASSIFIERS)}), "
        f"ft[-last|-first|-firstlast][-randhead]-<clf or head>, or pixels-<dt|rf>"
    )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; anything that is not a YAML mapping is refused by name."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a YAML mapping of keys, not {data!r:.60}")
    return data


DECLARATIONS = ("datasets", "tasks", "pretrained")  # what an included file may declare


def apply_includes(config: dict[str, Any], root: str | Path) -> None:
    """Take the declarations a config needs from the files under its `include:` (paths
    relative to `root`, the workflow's folder, or absolute): the tasks its grid names
    (sources, targets, learning-curve targets) and the pretrained sources among its sources
    that it does not declare itself, then the datasets of its tasks. Its own declarations
    win; an included file declares nothing else (a grid setting there would be hidden)."""
    paths = config.pop("include", None) or []
    for path in [paths] if isinstance(paths, str) else paths:
        file = Path(root) / path
        library = load_config(file)
        other = sorted(set(library) - set(DECLARATIONS))
        if other:
            raise ConfigError(
                f"include: {file} sets {', '.join(other)}; an included file declares only "
                f"{', '.join(DECLARATIONS)} (grid settings belong in the config itself)"
            )
        named = {*config.get("sources", []), *config.get("targets", [])}
        named |= set((config.get("learning_curve") or {}).get("targets") or [])
        _take(config, library, "tasks", named)
        _take(config, library, "pretrained", named)
        datasets = {task["dataset"] for task in config.get("tasks", {}).values()}
        _take(config, library, "datasets", datasets)


def _take(config: dict[str, Any], library: dict[str, Any], section: str, names: set) -> None:
    """The library's entries of a section among `names`, before the config's own."""
    own = config.get(section) or {}
    taken = {n: spec for n, spec in (library.get(section) or {}).items()
             if n in names and n not in own}  # fmt: skip
    if taken or section in config:
        config[section] = {**taken, **own}


MAX_CONFIG_NODES = 100_000  # a paper-size config has a few thousand keys and values


def refuse_alias_bombs(config: Any, limit: int = MAX_CONFIG_NODES) -> None:
    """Refuse a config whose YAML aliases (*name) expand beyond `limit` keys and values.

    A 2 KB file of nested aliases can stand for 10^9 values: Snakemake's own config merge and
    dump then walk every one (hours, or MemoryError). Aliases load as shared objects, so the
    expanded size is counted once per distinct object, in time proportional to the file.
    """
    sizes: dict[int, int] = {}

    def expanded(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        if id(value) not in sizes:
            children = value.values() if isinstance(value, dict) else value
            sizes[id(value)] = 1 + sum(expanded(child) for child in children)
        return sizes[id(value)]

    for key, value in config.items():
        if expanded(value) > limit:
            raise ConfigError(
                f"config key {key!r} expands to over {limit:,} values through YAML aliases "
                "(*name): refused before anything walks it; write the values out"
            )


def validate_schema(config: dict[str, Any], schema_path: str | Path) -> None:
    """JSON-schema validation that fills defaults, as snakemake.utils.validate does (the
    workflow's schema is workflow/schemas/config.schema.yaml). A violation is told in a few
    lines (the key, what is wrong, what is allowed), not with the whole schema."""
    import jsonschema
    from snakemake.utils import validate

    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    worst = jsonschema.exceptions.best_match(errors)
    if worst is not None:
        raise ConfigError(schema_message(worst))
    validate(config, str(schema_path), set_default=True)


def schema_message(error) -> str:
    """One schema violation: where, what, and the keys or values allowed there."""
    where = ".".join(str(part) for part in error.absolute_path) or "the config's top level"
    message = f"config error at {where}: {error.message}"
    allowed = error.schema.get("properties") if error.validator == "additionalProperties" else None
    if allowed:
        message += f"\nallowed keys there: {', '.join(sorted(allowed))}"
    description = error.schema.get("description")
    if description and error.validator != "additionalProperties":
        message += f"\n{where}: {' '.join(str(description).split())}"
    return message


def check_config(config: dict[str, Any]) -> None:
    """Checks the schema cannot express: names that refer to each other, the grid's sanity."""
    datasets, tasks = config["datasets"], config["tasks"]
    for name, spec in datasets.items():
        _check_groups(name, spec)
    for task, spec in tasks.items():
        if spec["dataset"] not in datasets:
            raise ConfigError(
                f"tasks.{task}.dataset: unknown dataset {spec['dataset']!r}; "
                f"known: {', '.join(sorted(datasets))}"
            )
        adapter = datasets[spec["dataset"]]["adapter"]
        if "label" in spec and adapter != "csv":
            raise ConfigError(
                f"tasks.{task}.label: only csv datasets have label columns to choose; "
                f"dataset {spec['dataset']!r} uses the {adapter} adapter"
            )
        classes = spec.get("classes")
        if classes is not None and len(classes) < 2:
            raise ConfigError(
                f"tasks.{task}.classes: a classification task needs at least 2 classes, "
                f"got {list(classes)}"
            )
    _check_pretrained(config)
    for task in [*config["targets"], *trained_sources(config)]:
        if task not in tasks:
            raise ConfigError(
                f"{task!r} (in sources or targets) is not a task; known tasks: "
                f"{', '.join(sorted(tasks))}"
            )
    for name in config["methods"]:
        parse_method(name)
    if config.get("image_sizes"):  # the grid's sizes; the first is the grid's image_size
        config["image_size"] = config["image_sizes"][0]
    _check_architectures(config)
    _check_adaptive(config)
    if len(set(config["seeds"])) != len(config["seeds"]):
        raise ConfigError(f"seeds: repeated seed in {config['seeds']}")


def _check_adaptive(config: dict[str, Any]) -> None:
    """The adaptive grid's estimator must be computed, and for LEEP/NCE every source it
    ranks must have classes of its own (ImageNet's only on VGG16 at 224 px)."""
    adaptive = config.get("adaptive")
    if not adaptive:
        return
    estimator = adaptive.get("estimator", "logme")
    computed = config.get("transferability", {}).get("estimators")
    if computed is not None and estimator not in computed:
        raise ConfigError(
            f"adaptive.estimator: {estimator} is not among transferability.estimators "
            f"({', '.join(computed)})"
        )
    if estimator in ("leep", "nce") and pretrained_sources(config):
        raise ConfigError(
            f"adaptive.estimator: {estimator} needs each source's own softmax; pretrained "
            f"sources ({', '.join(pretrained_sources(config))}) have none: use logme, "
            "hscore, gbc or nleep"
        )
    if estimator in ("leep", "nce") and IMAGENET in config["sources"]:
        archs = {a if isinstance(a, str) else a["name"] for a in config.get("architectures", [])}
        if config["image_size"] != 224 or archs - {"vgg16", "efficientnet_lite0"}:
            raise ConfigError(
                f"adaptive.estimator: {estimator} needs each source's own softmax; ImageNet "
                "has one only on VGG16 and EfficientNet-Lite0 at 224 px: use logme, hscore, "
                "gbc or nleep"
            )


GRID_KEYS = ("sources", "targets", "methods", "seeds")


def architecture_grids(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{network: its architecture, sources, targets, methods, seeds and image_size}: the
    config's, or the subsets and sizes an `architectures` entry names (a second network on
    part of the grid, at the sizes it affords). An architecture at its first size is named
    as itself; at each further size, `<name>_<size>px` (its results lie under that name)."""
    pretrained = config.get("pretrained") or {}
    default_sizes = config.get("image_sizes") or [config["image_size"]]
    grids: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, int]] = set()
    for entry in config.get("architectures") or [DEFAULT_ARCHITECTURE]:
        if isinstance(entry, str):
            entry = {"name": entry}
        name = entry["name"]
        sizes = entry.get("image_sizes") or (
            [entry["image_size"]] if "image_size" in entry else default_sizes
        )
        for size in sizes:
            if (name, size) in seen:
                raise ConfigError(f"architectures: {name} at {size} px listed more than once")
            seen.add((name, size))
            grid = {key: list(entry.get(key, config[key])) for key in GRID_KEYS}
            # a pretrained source belongs to the network its weights were made for
            grid["sources"] = [s for s in grid["sources"]
                               if s not in pretrained
                               or pretrained[s]["architecture"] == name]  # fmt: skip
            grid["image_size"] = size
            grid["architecture"] = name
            grids[name if name not in grids else sized_name(name, size)] = grid
    return grids


def _check_architectures(config: dict[str, Any]) -> None:
    for entry in config.get("architectures") or []:
        # an entry's image_sizes would replace its image_size without a word
        if isinstance(entry, dict) and "image_size" in entry and "image_sizes" in entry:
            raise ConfigError(
                f"architectures.{entry['name']}: image_size ({entry['image_size']}) and "
                f"image_sizes ({entry['image_sizes']}) both given: keep one (image_sizes "
                "runs the network at each size, the first as its own name)"
            )
    grids = architecture_grids(config)
    for key, grid in grids.items():
        name, size = grid["architecture"], grid["image_size"]
        spec = architecture_spec(name)
        if size < spec.min_size:
            raise ConfigError(
                f"image_size: {size} px is below {name}'s minimum of "
                f"{spec.min_size} (architectures)"
            )
        if name in config["tasks"] or key in config["tasks"]:
            raise ConfigError(f"tasks.{key}: a task may not be named like an architecture")
        for grid_key in GRID_KEYS:
            extra = [v for v in grid[grid_key] if v not in config[grid_key]]
            if extra:
                raise ConfigError(
                    f"architectures.{name}.{grid_key}: {extra} not in the config's "
                    f"{grid_key} ({config[grid_key]}); an architecture runs a part of the grid"
                )
        randhead = [m for m in grid["methods"]
                    if (parse_method(m).variant or "").endswith("-randhead")]  # fmt: skip
        if randhead and not spec.has_dense_head:
            raise ConfigError(
                f"methods: {randhead[0]} re-initialises VGG16's dense layers; {name} has "
                "none (list it under architectures with methods that leave it out)"
            )


def architecture_spec(name: str):
    try:
        return architecture(name)
    except UnknownArchitecture as error:
        raise ConfigError(str(error)) from None


def _check_groups(name: str, spec: dict[str, Any]) -> None:
    groups = spec.get("groups")
    if not groups:
        return
    where = f"datasets.{name}.groups"
    if spec["adapter"] in ("npz", "idx"):
        raise ConfigError(
            f"{where}: the {spec['adapter']} adapter has no file names or columns to take "
            "groups from"
        )
    if "column" in groups and spec["adapter"] != "csv":
        raise ConfigError(f"{where}.column: only the csv adapter has columns")
    if "pattern" in groups:
        try:
            pattern = re.compile(groups["pattern"])
        except re.error as error:
            raise ConfigError(f"{where}.pattern {groups['pattern']!r}: {error}") from error
        if pattern.groups != 1:
            raise ConfigError(
                f"{where}.pattern {groups['pattern']!r} has {pattern.groups} capture groups; "
                "it needs exactly one (the part of the path that names the patient, lesion "
                "or photo)"
            )


def check_data_present(
    config: dict[str, Any],
    data_root: str,
    trained: list[str],
    pretrained: list[str],
    downloads: dict[str, Any],
) -> None:
    """Every dataset and weights file the grid reads is in place or has a `download:`;
    else one error lists each missing one with its path."""
    root = Path(data_root)
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"data_root {config['data_root']!r} is a file, not a folder ({root}); set it to "
            "the folder that holds the datasets"
        )
    used = {config["tasks"][t]["dataset"] for t in [*config["targets"], *trained]}
    wanted = [(f"datasets.{name}.path", config["datasets"][name]["path"]) for name in sorted(used)]
    wanted += [(f"pretrained.{name}.weights", config["pretrained"][name]["weights"])
               for name in pretrained]  # fmt: skip
    missing = [f"  {key}: {root / path} does not exist" for key, path in wanted
               if path not in downloads and not (root / path).exists()]  # fmt: skip
    if missing:
        hint = f"data_root {config['data_root']!r} is not a folder; " if not root.is_dir() else ""
        raise ConfigError(
            f"{hint}the grid reads data that are not there (nothing was run or deleted):\n"
            + "\n".join(missing)
            + f"\nSet data_root (--config data_root=FOLDER, after the targets, or "
            f"${DATA_ROOT_VARIABLE}) to the folder that holds them, or give the dataset a "
            "download: entry (config/README.md)."
        )


def trained_sources(config: dict[str, Any]) -> list[str]:
    """Sources that are networks trained from scratch here on a task of the config."""
    pretrained = config.get("pretrained") or {}
    return [s for s in config["sources"] if s not in SPECIAL_SOURCES and s not in pretrained]


def pretrained_sources(config: dict[str, Any], arch: str | None = None) -> list[str]:
    """Sources of the `pretrained` section (of one architecture, if given)."""
    pretrained = config.get("pretrained") or {}
    return [s for s in config["sources"] if s in pretrained
            and arch in (None, pretrained[s]["architecture"])]  # fmt: skip


def _check_pretrained(config: dict[str, Any]) -> None:
    """Each pretrained entry names a known architecture, one that the grid runs where the
    entry is among the sources, and a name no task or built-in source has."""
    archs = list(dict.fromkeys(g["architecture"] for g in architecture_grids(config).values()))
    for name, entry in (config.get("pretrained") or {}).items():
        where = f"pretrained.{name}"
        if name in SPECIAL_SOURCES or name in config["tasks"]:
            raise ConfigError(f"{where}: the name is taken by a built-in source or a task")
        architecture_spec(entry["architecture"])
        if name in config["sources"] and entry["architecture"] not in archs:
            raise ConfigError(
                f"{where}.architecture: {entry['architecture']} is not among the grid's "
                f"architectures ({', '.join(archs)}); add it there to run this source"
            )
        if entry.get("preprocessing") and entry["weights"].endswith(".keras"):
            raise ConfigError(
                f"{where}.preprocessing: a .keras model carries its own preprocessing"
            )


def same_data(config: dict[str, Any], source: str, target: str) -> bool:
    """True where source and target come from one dataset (the paper's 'N.A.' cells)."""
    tasks = config["tasks"]
    return source in tasks and tasks[source]["dataset"] == tasks[target]["dataset"]


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the whole config, recorded in every run for provenance."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
