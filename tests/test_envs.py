"""The conda environment of the rules asks for what the package needs, at the same minimums."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import REPO

# conda-forge names where they differ from PyPI's (matplotlib-base: without the Qt GUI)
CONDA_NAMES = {"matplotlib": "matplotlib-base"}


def requirement(spec: str) -> tuple[str, str]:
    name, bound = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", spec).groups()
    return name.lower(), bound.replace(" ", "")


def test_conda_env_matches_the_package_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(requirement(spec) for spec in project["dependencies"])
    env = yaml.safe_load((REPO / "envs" / "medtransfer.yaml").read_text())
    listed = {}
    for entry in env["dependencies"]:
        for spec in entry["pip"] if isinstance(entry, dict) else [entry]:
            name, bound = requirement(spec)
            listed[name] = bound
    assert listed.pop("python").startswith("=3.11")
    for name, bound in wanted.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert listed.get(conda_name) == bound, (name, listed.get(conda_name), bound)
