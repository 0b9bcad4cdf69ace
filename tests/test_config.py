import time
from pathlib import Path

import pytest
import yaml

from medtransfer.config import (
    ConfigError,
    apply_includes,
    check_config,
    check_data_present,
    load_config,
    parse_method,
    refuse_alias_bombs,
    validate_schema,
)
from medtransfer.grid import grid_runs

from .conftest import REPO, SCHEMA, read_config, small_config, snakemake, write_config

PAPER_CONFIGS = ("fok2019", "architectures", "pal2016", "patel2019", "showcase", "demo-medmnist",
                 "demo-full")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind", "variant", "clf"),
    [
        ("fe-svm", "fe", None, "svm"),
        ("ft-svm", "ft", "all", "svm"),
        ("ft-last-logreg", "ft", "last", "logreg"),
        ("ft-randhead-head", "ft", "all-randhead", "head"),
        ("ft-firstlast-mlp2", "ft", "firstlast", "mlp2"),
        ("pixels-rf", "pixels", None, "rf"),
    ],
)
def test_method_names(name, kind, variant, clf):
    method = parse_method(name)
    assert (method.kind, method.variant, method.classifier) == (kind, variant, clf)


@pytest.mark.parametrize("bad", ["fe-head", "ft-middle-svm", "pixels-svm", "svm"])
def test_unknown_method_is_named(bad):
    with pytest.raises(ConfigError, match=f"unknown method '{bad}'"):
        parse_method(bad)


def test_schema_rejects_a_misspelled_key():
    config = small_config()
    config["image_sise"] = 32
    with pytest.raises(ConfigError, match="image_sise"):
        validate_schema(config, SCHEMA)


def test_schema_rejects_a_misspelled_nested_key():
    config = small_config()
    config["finetune"]["epocs"] = 3
    with pytest.raises(ConfigError, match="epocs"):
        validate_schema(config, SCHEMA)


def test_unknown_task_and_dataset_are_named():
    config = small_config()
    config["targets"] = ["isic", "retina"]
    with pytest.raises(ConfigError, match="'retina'"):
        check_config(config)
    config = small_config()
    config["tasks"]["isic"]["dataset"] = "isic2017"
    with pytest.raises(ConfigError, match=r"tasks.isic.dataset: unknown dataset 'isic2017'"):
        check_config(config)


def test_label_column_only_for_csv_datasets():
    config = small_config()
    config["tasks"]["blood"]["label"] = "diagnosis"
    with pytest.raises(ConfigError, match=r"tasks.blood.label: .*folder adapter"):
        check_config(config)
    config = small_config()
    config["tasks"]["isic"]["label"] = "diagnosis"
    check_config(config)


def test_image_size_below_32_is_refused_by_the_schema():
    config = small_config()
    config["image_size"] = 16
    with pytest.raises(ConfigError, match="16"):
        validate_schema(config, SCHEMA)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("image_size", 4096, "4096 is greater than the maximum of 1024"),
        ("finetune.epochs", 0, "0 is less than the minimum of 1"),
        ("pretrain.epochs", 0, "0 is less than the minimum of 1"),
    ],
)
def test_sizes_and_epochs_that_cannot_give_a_sound_grid_are_refused(key, value, complaint):
    config = small_config()
    *parents, last = key.split(".")
    place = config
    for part in parents:
        place = place[part]
    place[last] = value
    with pytest.raises(ConfigError, match=complaint):
        validate_schema(config, SCHEMA)


def alias_bomb(levels: int) -> str:
    """YAML whose nested aliases stand for 10**levels strings in a few hundred bytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "label_names:\n" + "\n".join("  " + line for line in lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once():
    bomb = yaml.safe_load(alias_bomb(9))  # 10^9 leaves
    started = time.monotonic()
    with pytest.raises(ConfigError, match="'label_names' expands to over 100,000 values"):
        refuse_alias_bombs(bomb)
    assert time.monotonic() - started < 5.0  # the walk is linear in the file, not the expansion
    refuse_alias_bombs(yaml.safe_load(alias_bomb(3)))  # 1,000 values: a legitimate alias


def test_a_data_root_that_is_a_file_is_refused(tmp_path):
    config = small_config()
    config["data_root"] = str(tmp_path / "notes.txt")
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(ConfigError, match="notes.txt' is a file, not a folder"):
        check_data_present(config, config["data_root"], [], [], {})


def test_config_file_that_is_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [none\n  targets: {")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a sentence\n")
    with pytest.raises(ConfigError, match="must hold a YAML mapping"):
        load_config(scalar)


def test_grid_leaves_out_same_data_pairs_and_runs_pixels_once():
    config = small_config()
    config["sources"] = ["none", "natural", "isic"]
    config["methods"] = ["fe-svm", "pixels-rf"]
    runs = grid_runs(config)
    assert not [r for r in runs if r.source == "isic" and r.target == "isic"]
    pixel_sources = {r.source for r in runs if r.method.kind == "pixels"}
    assert pixel_sources == {"none"}


@pytest.mark.slow  # runs Snakemake
def test_workflow_fails_before_any_job_on_a_misspelled_key(tmp_path, shared_data):
    config = write_config(tmp_path / "c.yaml", shared_data, sedes=[0, 1])
    result = snakemake(tmp_path, config, "-n", "--cores", "1", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "sedes" in output and "was unexpected" in output
    assert "allowed keys there:" in output and "seeds" in output
    # the key, the complaint, the allowed keys: a few lines, not the whole schema
    assert len(output.strip().splitlines()) < 20, output
    assert not Path(tmp_path / "results").exists()


def declarations(path: Path) -> list[tuple[str, str, str]]:
    """(section, name, the entry with the dataset entry it reads) of every declaration a
    config file writes itself: the same task over other data is another declaration."""
    data = yaml.safe_load(path.read_text())
    found = []
    for section in ("datasets", "tasks", "pretrained"):
        for name, spec in (data.get(section) or {}).items():
            dataset = (data.get("datasets") or {}).get(spec.get("dataset"))
            found.append((section, name, repr((spec, dataset))))
    return found


def test_no_declaration_is_written_twice_across_the_configs():
    files = [*sorted((REPO / "config").rglob("*.yaml")), REPO / "config.yaml"]
    seen: dict[tuple[str, str, str], list[str]] = {}
    for path in files:
        for key in declarations(path):
            seen.setdefault(key, []).append(str(path.relative_to(REPO)))
    repeated = {f"{s}.{n}": where for (s, n, _), where in seen.items() if len(where) > 1}
    assert not repeated, repeated


def test_a_config_takes_what_its_grid_names_from_its_includes(tmp_path):
    library = tmp_path / "lib.yaml"
    library.write_text(
        "datasets:\n  a: {adapter: folder, path: A}\n  b: {adapter: folder, path: B}\n"
        "tasks:\n  ta: {dataset: a}\n  tb: {dataset: b}\n  unused: {dataset: b}\n"
    )
    config = {
        "include": ["lib.yaml"],
        "tasks": {"tb": {"dataset": "b", "max_per_class": 5}},
        "sources": ["none", "ta"],
        "targets": ["tb"],
    }
    apply_includes(config, tmp_path)
    assert "include" not in config
    assert config["tasks"] == {"ta": {"dataset": "a"}, "tb": {"dataset": "b", "max_per_class": 5}}
    assert list(config["datasets"]) == ["a", "b"]


def test_an_included_file_with_grid_settings_is_refused_by_name(tmp_path):
    library = tmp_path / "lib.yaml"
    library.write_text("datasets: {}\nseeds: [1]\n")
    with pytest.raises(ConfigError, match=r"lib\.yaml sets seeds"):
        apply_includes({"include": ["lib.yaml"]}, tmp_path)


@pytest.mark.parametrize("path", ["config.yaml", *(f"config/{n}.yaml" for n in PAPER_CONFIGS)])
def test_every_config_is_whole_after_its_includes(path):
    config = read_config(REPO / path)
    validate_schema(config, SCHEMA)
    check_config(config)
    assert set(config["targets"]) <= set(config["tasks"])
