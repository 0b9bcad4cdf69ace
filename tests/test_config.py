from pathlib import Path

import pytest
import yaml

from medtransfer.config import (
    ConfigError,
    check_config,
    grid_runs,
    load_config,
    parse_method,
    validate_schema,
)

from .conftest import REPO, snakemake, write_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def small_config():
    config = yaml.safe_load((REPO / "tests" / "configs" / "small.yaml").read_text())
    validate_schema(config, SCHEMA)
    return config


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
