"""Downloads from a web server on 127.0.0.1 inside the test: the sample data served as a
publisher would, with HTTP Range requests, checksums and a connection that breaks off."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml

from medtransfer.download import (
    MEDMNIST_MIRROR,
    Remote,
    download_dataset,
    fetch,
    medmnist_remote,
    resolve,
)
from medtransfer.errors import DataError

from .conftest import REPO, snakemake, snakemake_command


class Served:
    """Files served from memory; `break_first` cuts the first answer for a path short."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.break_first: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture()
def server():
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            name = self.path.lstrip("/").split("?")[0]
            served.requests.append((name, self.headers.get("Range")))
            if name not in served.files:
                self.send_error(404)
                return
            data = served.files[name]
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            cut = served.break_first.pop(name, None)
            self.wfile.write(data[start:cut] if cut else data[start:])

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served
    httpd.shutdown()


PNEUMONIA = "pneumoniamnist/pneumoniamnist_reassembled.npz"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve_pneumonia(server, shared_data) -> bytes:
    data = (shared_data / PNEUMONIA).read_bytes()
    server.files["pneumoniamnist.npz"] = data
    return data


def test_a_verified_download_lands_at_the_datasets_path(server, shared_data, tmp_path):
    data = serve_pneumonia(server, shared_data)
    target = tmp_path / "medmnist" / "pneumoniamnist.npz"
    spec = {"url": server.url("pneumoniamnist.npz"), "md5": md5(data)}
    download_dataset(spec, target, "pneumoniamnist")
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["pneumoniamnist.npz"]
    with np.load(target) as npz:
        assert npz["test_images"].shape == (624, 28, 28)


def test_a_wrong_checksum_names_the_file_and_both_sums_and_leaves_nothing(
    server, shared_data, tmp_path
):
    data = serve_pneumonia(server, shared_data)
    target = tmp_path / "pneumoniamnist.npz"
    wrong = "0" * 32
    with pytest.raises(DataError) as failure:
        fetch(Remote(server.url("pneumoniamnist.npz"), "md5", wrong), target, "pneumonia")
    message = str(failure.value)
    assert "pneumoniamnist.npz" in message and wrong in message and md5(data) in message
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_download_resumes_where_it_broke_off(server, shared_data, tmp_path):
    data = serve_pneumonia(server, shared_data)
    server.break_first["pneumoniamnist.npz"] = 1_000_000
    target = tmp_path / "pneumoniamnist.npz"
    fetch(Remote(server.url("pneumoniamnist.npz"), "md5", md5(data)), target, "pneumonia")
    assert target.read_bytes() == data
    assert server.requests == [
        ("pneumoniamnist.npz", None),
        ("pneumoniamnist.npz", "bytes=1000000-"),
    ]


def test_an_archive_is_verified_then_unpacked_into_the_layout(server, shared_data, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for image in sorted((shared_data / "chest_xray_kermany_val").rglob("*.jpeg")):
            relative = image.relative_to(shared_data / "chest_xray_kermany_val")
            bundle.write(image, f"chest_xray/val/{relative}")
    server.files["chest.zip"] = buffer.getvalue()
    spec = {"url": server.url("chest.zip"), "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
            "unpack": "zip", "folder": "chest_xray"}  # fmt: skip
    target = tmp_path / "chest_xray"
    download_dataset(spec, target, "chest_xray")
    assert len(list((target / "val" / "NORMAL").glob("*.jpeg"))) == 8
    assert len(list((target / "val" / "PNEUMONIA").glob("*.jpeg"))) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chest_xray"]  # no archive, no temp


def test_offline_the_message_names_dataset_url_and_folder(tmp_path):
    target = tmp_path / "medmnist" / "retinamnist_64.npz"
    url = "http://127.0.0.1:9/retinamnist_64.npz"  # the discard port: nothing answers
    with pytest.raises(DataError, match=r"dataset retina: cannot download .*retinamnist_64"):
        fetch(Remote(url, "md5", "0" * 32), target, "retina")
    with pytest.raises(DataError, match=str(target)):
        fetch(Remote(url, "md5", "0" * 32), target, "retina")


def test_kaggle_without_a_token_says_which_file_to_create(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    with pytest.raises(
        DataError, match=r"dataset cats: Kaggle's .*needs an API token.*kaggle.json"
    ):
        download_dataset("kaggle:paultimothymooney/blood-cells", tmp_path / "x", "cats")
    assert not (tmp_path / "x").exists()


def test_medmnist_names_resolve_to_the_publishers_file_and_md5(monkeypatch):
    monkeypatch.delenv(MEDMNIST_MIRROR, raising=False)
    remote = medmnist_remote("pneumoniamnist", 64)
    assert remote.url == (
        "https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1"
    )
    assert remote.checksum == "8f4eceb4ccffa70c672198ea285246c6"  # medmnist 3.0.2 info.py
    assert resolve("medmnist:pneumoniamnist@28", "p").url.endswith("/pneumoniamnist.npz?download=1")
    monkeypatch.setenv(MEDMNIST_MIRROR, "http://mirror.example/medmnist/")
    assert (
        medmnist_remote("bloodmnist", 128).url
        == "http://mirror.example/medmnist/bloodmnist_128.npz"
    )
    with pytest.raises(DataError, match="sizes are 28, 64, 128, 224"):
        resolve("medmnist:pneumoniamnist@32", "p")
    with pytest.raises(DataError, match="not a 2-D MedMNIST dataset"):
        resolve("medmnist:chestmnist@64", "p")


def test_a_manual_dataset_fails_with_its_steps(tmp_path):
    with pytest.raises(DataError, match=r"place it at .*ham: log in at"):
        download_dataset({"manual": "log in at the ISIC archive"}, tmp_path / "ham", "ham")


@pytest.mark.slow
def test_the_quick_start_demo_runs_on_pneumoniamnist_from_a_local_server(
    server, shared_data, tmp_path
):
    """The README's first command, its config as committed but for the download address:
    the sample's PneumoniaMNIST (the official file's images; its own MD5) from a local
    server in place of Zenodo, fetched, verified, prepared at the grid's size and run."""
    data = serve_pneumonia(server, shared_data)
    config = yaml.safe_load((REPO / "config" / "demo-medmnist.yaml").read_text())
    pneumonia = config["datasets"]["pneumoniamnist"]
    assert pneumonia["download"] == "medmnist:pneumoniamnist@28"  # 28 px: a small first fetch
    pneumonia["download"] = {"url": server.url("pneumoniamnist.npz"), "md5": md5(data)}
    config["datasets"] = {"pneumoniamnist": pneumonia}
    config["tasks"] = {"pneumonia": {**config["tasks"]["pneumonia"], "max_per_class": 60}}
    config.update(
        data_root=str(tmp_path / "data"), sources=["none"], targets=["pneumonia"],
        methods=["fe-svm"], seeds=[0],
    )  # fmt: skip
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake(workdir, path, "--cores", "2", timeout=900)
    assert (tmp_path / "data" / pneumonia["path"]).read_bytes() == data
    assert (workdir / "results/vgg16/runs/pneumonia/none/fe-svm/seed0.json").is_file()
    assert "| pneumonia |" in (workdir / "results" / "table2.md").read_text()
    again = snakemake(workdir, path, "-n", "--cores", "2")
    assert "Nothing to be done" in again.stdout + again.stderr  # the second run fetches nothing
    assert [name for name, _ in server.requests] == ["pneumoniamnist.npz"]


@pytest.mark.slow  # runs Snakemake
def test_the_quick_start_offline_names_every_file_it_could_not_fetch(tmp_path, monkeypatch):
    """All four downloads fail (a mirror where nothing answers stands for no network): the
    console names each dataset, its URL and its path, not only the first (keep-going)."""
    import subprocess

    monkeypatch.setenv(MEDMNIST_MIRROR, "http://127.0.0.1:9/")  # the discard port
    command = snakemake_command(tmp_path, REPO / "config" / "demo-medmnist.yaml",
                                "--config", f"data_root={tmp_path / 'data'}")  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    console = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("pneumoniamnist", "retinamnist", "dermamnist", "bloodmnist"):
        line = f"rule download (download_file=medmnist/{name}_28.npz) failed: DataError"
        assert line in console, name
        assert f"http://127.0.0.1:9/{name}.npz" in console, name
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.npy"))


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic (unsigned bytes, ndim), the dimensions, the data; gzip-compressed."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_several_files_make_one_folder_the_idx_adapter_reads(server, tmp_path):
    from medtransfer.adapters import open_dataset

    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 255, (6, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.array([0, 1, 2, 0, 1, 2])),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 255, (3, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.array([2, 1, 0])),
    }
    server.files.update(parts)
    spec = {"files": [{"url": server.url(name), "md5": md5(data)} for name, data in parts.items()]}
    download_dataset(spec, tmp_path / "fashion", "fashion")
    dataset = open_dataset({"adapter": "idx", "path": "fashion"}, tmp_path)
    assert len(dataset.items) == 9 and dataset.items[-1].split == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fashion"]


def test_fashion_mnist_names_the_publishers_four_files():
    files = resolve("fashion-mnist", "fashion").remotes
    assert [r.url.rsplit("/", 1)[1] for r in files] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert files[0].checksum == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
