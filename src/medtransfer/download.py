"""Getting the data: what the `download` rules do.

A dataset entry may say where its files come from (`datasets.<name>.download`):

- `medmnist:<name>@<size>`: a MedMNIST / MedMNIST+ file from its Zenodo record (size 28, 64,
  128 or 224), checked against the publisher's MD5 (`$MEDTRANSFER_MEDMNIST_URL` names a
  mirror of the record's files);
- `{url: ..., md5: ...}` or `{url: ..., sha256: ...}`: any file, optionally an archive
  (`unpack: zip | tar`, `folder:` the archive's folder that becomes the dataset's path);
- `kaggle:<owner>/<dataset>` or `kaggle:competition/<name>` (or `{kaggle: ..., folder: ...}`):
  through the official `kaggle` client, which needs an API token;
- `fashion-mnist`, or `{files: [{url, md5}, ...]}`: several files that make one folder;
- `{manual: "<steps>"}`: data behind a login; the steps are the error message.

Downloads resume (an HTTP Range request continues `<file>.part`), log a progress line, are
verified before anything is unpacked, and are renamed into place only when complete: a
half-downloaded file never has the name the dataset's path gives it.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError

log = logging.getLogger(__name__)

MEDMNIST_RECORD = "https://zenodo.org/records/10519652/files/"
MEDMNIST_MIRROR = "MEDTRANSFER_MEDMNIST_URL"
MEDMNIST_SIZES = (28, 64, 128, 224)
# The publisher's MD5 of each 2-D file at 28, 64, 128 and 224 px (medmnist 3.0.2, info.py).
MEDMNIST_MD5 = {
    "pathmnist": ("a8b06965200029087d5bd730944a56c1", "55aa9c1e0525abe5a6b9d8343a507616",
                  "ac42d08fb904d92c244187169d1fd1d9", "2c51a510bcdc9cf8ddb2af93af1eadec"),
    "dermamnist": ("0744692d530f8e62ec473284d019b0c7", "b70a2f5635c6199aeaa28c31d7202e1f",
                   "2defd784463fa5243564e855ed717de1", "8974907d8e169bef5f5b96bc506ae45d"),
    "octmnist": ("c68d92d5b585d8d81f7112f81e2d0842", "e229e9440236b774d9f0dfef9d07bdaf",
                 "0a97e76651ace45c5d943ee3f65b63ae", "abc493b6d529d5de7569faaef2773ba3"),
    "pneumoniamnist": ("28209eda62fecd6e6a2d98b1501bb15f", "8f4eceb4ccffa70c672198ea285246c6",
                       "05b46931834c231683c68f40c47b2971", "d6a3c71de1b945ea11211b03746c1fe1"),
    "retinamnist": ("bd4c0672f1bba3e3a89f0e4e876791e4", "afda852cc34dcda56f86ad2b2457dbcc",
                    "e48e916a24454daf90583d4e6efb1a18", "eae7e3b6f3fcbda4ae613ebdcbe35348"),
    "breastmnist": ("750601b1f35ba3300ea97c75c52ff8f6", "742edef2a1fd1524b2efff4bd7ba9364",
                    "363e4b3f8d712e9b5de15470a2aaadf1", "b56378a6eefa9fed602bb16d192d4c8b"),
    "bloodmnist": ("7053d0359d879ad8a5505303e11de1dc", "2b94928a2ae4916078ca51e05b6b800b",
                   "adace1e0ed228fccda1f39692059dd4c", "b718ff6835fcbdb22ba9eacccd7b2601"),
    "tissuemnist": ("ebe78ee8b05294063de985d821c1c34b", "123ece2eba09d0aa5d698fda57103344",
                    "61b955355d7425a89687b06cca3ce0c2", "b077128c4a949f0a4eb01517f9037b9c"),
    "organamnist": ("68e3f8846a6bd62f0c9bf841c0d9eacc", "2dcccc29b88e6da5a01161ef20cda288",
                    "eeae80d0a227a8d099027e1b3cfd3b60", "50747347e05c87dd3aaf92c49f9f3170"),
    "organcmnist": ("b9ceb9546e10131b32923c5bbeaea2b1", "3ce34a8724ea6f548e6db4744d03b6a9",
                    "773c1f009daa3fe5d9a2a201b2a7ed94", "050f5e875dc056f6768abf94ec9995d1"),
    "organsmnist": ("9ab87b696fb54e2a387ebe992d6ed5f1", "53a6d115339d874c25e309a994ff46d3",
                    "ded0c5fa01a95dc4978b956f613e9b8e", "b354719e553fbbb2513d5533f52a4cb1"),
}  # fmt: skip
FASHION_MNIST_URL = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
)
FASHION_MNIST_MD5 = {  # the publisher's MD5s (zalandoresearch/fashion-mnist README)
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
KAGGLE_TOKEN_HELP = (
    "create ~/.kaggle/kaggle.json (kaggle.com > Settings > API > Create New Token; "
    "or set KAGGLE_USERNAME and KAGGLE_KEY), then run again"
)


@dataclass(frozen=True)
class Remote:
    """A file on a web server, its checksum, and how it becomes the dataset's path."""

    url: str
    algorithm: str  # md5 or sha256
    checksum: str
    unpack: str | None = None  # None (the file is the data), "zip" or "tar"
    folder: str | None = None  # the archive's folder that becomes the dataset's path


@dataclass(frozen=True)
class Files:
    """Several files that together are the dataset's folder (each named by its URL)."""

    remotes: tuple[Remote, ...]


@dataclass(frozen=True)
class Kaggle:
    ref: str  # owner/dataset, or competition/<name>
    folder: str | None = None  # the download's folder that becomes the dataset's path

    @property
    def command(self) -> list[str]:
        kind, _, name = self.ref.partition("/")
        if kind == "competition":
            return ["kaggle", "competitions", "download", "-c", name]
        return ["kaggle", "datasets", "download", "-d", self.ref, "--unzip"]


@dataclass(frozen=True)
class Manual:
    steps: str


def medmnist_remote(name: str, size: int) -> Remote:
    if name not in MEDMNIST_MD5:
        raise DataError(
            f"medmnist:{name}: not a 2-D MedMNIST dataset; known: {', '.join(MEDMNIST_MD5)}"
        )
    if size not in MEDMNIST_SIZES:
        raise DataError(f"medmnist:{name}@{size}: sizes are {', '.join(map(str, MEDMNIST_SIZES))}")
    base = os.environ.get(MEDMNIST_MIRROR) or MEDMNIST_RECORD
    filename = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
    query = "?download=1" if base == MEDMNIST_RECORD else ""
    md5 = MEDMNIST_MD5[name][MEDMNIST_SIZES.index(size)]
    return Remote(base.rstrip("/") + "/" + filename + query, "md5", md5)


def fashion_mnist() -> Files:
    return Files(
        tuple(
            Remote(FASHION_MNIST_URL + name, "md5", md5) for name, md5 in FASHION_MNIST_MD5.items()
        )
    )


def resolve(spec: str | dict[str, Any], dataset: str) -> Remote | Files | Kaggle | Manual:
    """What a dataset's `download` entry names."""
    where = f"datasets.{dataset}.download"
    if spec == "fashion-mnist":
        return fashion_mnist()
    if isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        if kind == "medmnist":
            name, _, size = rest.partition("@")
            if not size.isdigit():
                raise DataError(f"{where}: {spec!r} needs a size, e.g. medmnist:{name}@64")
            return medmnist_remote(name, int(size))
        if kind == "kaggle" and "/" in rest:
            return Kaggle(rest)
        raise DataError(
            f"{where}: {spec!r} is neither medmnist:<name>@<size> nor kaggle:<owner>/<name>"
        )
    if "manual" in spec:
        return Manual(spec["manual"])
    if "kaggle" in spec:
        return Kaggle(spec["kaggle"], spec.get("folder"))
    if "files" in spec:
        return Files(tuple(resolve(entry, dataset) for entry in spec["files"]))
    algorithm = next((a for a in ("sha256", "md5") if a in spec), None)
    if "url" not in spec or algorithm is None:
        raise DataError(f"{where}: give url and its md5 or sha256")
    return Remote(
        spec["url"], algorithm, spec[algorithm].lower(), spec.get("unpack"), spec.get("folder")
    )


def file_checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _offline_error(dataset: str, url: str, target: Path, reason: Any) -> DataError:
    return DataError(
        f"dataset {dataset}: cannot download {url} ({reason}); without a network, download it "
        f"elsewhere and place it at {target}"
    )


def _receive(url: str, part: Path, dataset: str, target: Path, timeout: float) -> None:
    """Append what the server sends to `part`, asking for the rest where it already holds
    some; a broken connection leaves what arrived, for the next attempt."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the .part is whole
            return
        raise _offline_error(dataset, url, target, f"HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise _offline_error(dataset, url, target, getattr(error, "reason", error)) from error
    with response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        if have:
            log.info("resuming %s at %.1f MB", url, have / 1e6)
        done, last = have, time.monotonic()
        with open(part, "ab" if have else "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                done += len(block)
                if time.monotonic() - last >= 5:
                    shown = (
                        f" of {total / 1e6:.1f} MB ({100 * done / total:.0f} %)" if total else ""
                    )
                    log.info("downloaded %.1f MB%s", done / 1e6, shown)
                    last = time.monotonic()
    if total is not None and done < total:
        raise ConnectionError(f"connection closed after {done} of {total} bytes")


def fetch(
    remote: Remote, target: Path, dataset: str, attempts: int = 3, timeout: float = 60
) -> None:
    """Download, verify and place one dataset's file (or unpacked archive) at `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _receive(remote.url, part, dataset, target, timeout)
            break
        except (OSError, http.client.HTTPException) as error:  # broke off: resume
            if attempt == attempts:
                raise _offline_error(dataset, remote.url, target, error) from error
            log.warning("download of %s broke off (%s); resuming", remote.url, error)
    got = file_checksum(part, remote.algorithm)
    if got != remote.checksum:
        part.unlink()
        raise DataError(
            f"dataset {dataset}: {target.name} from {remote.url} has {remote.algorithm} {got}, "
            f"expected {remote.checksum}; the download was removed"
        )
    log.info("%s verified (%s %s)", target.name, remote.algorithm, got)
    if remote.unpack:
        _unpack_into_place(part, remote, target)
        part.unlink()
    else:
        os.replace(part, target)


def fetch_files(files: Files, target: Path, dataset: str) -> None:
    """Each file into a folder beside the target, renamed onto it once all are verified (an
    interrupted run resumes the file it broke off in)."""
    target = Path(target)
    staging = target.with_name(target.name + ".part")
    staging.mkdir(parents=True, exist_ok=True)
    for remote in files.remotes:
        name = remote.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if not (staging / name).is_file():
            fetch(remote, staging / name, dataset)
    staging.rename(target)


def _unpack_into_place(archive: Path, remote: Remote, target: Path) -> None:
    """Unpack beside the target, then rename the wanted folder onto the target."""
    with tempfile.TemporaryDirectory(
        prefix=".unpack-", dir=target.parent, ignore_cleanup_errors=True
    ) as tmp:
        if remote.unpack == "zip":
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():  # no member may land outside the folder
                    if not (Path(tmp) / member).resolve().is_relative_to(Path(tmp).resolve()):
                        raise DataError(f"{remote.url}: archive member {member!r} leaves it")
                bundle.extractall(tmp)
        elif remote.unpack == "tar":
            with tarfile.open(archive) as bundle:
                bundle.extractall(tmp, filter="data")
        else:
            raise DataError(f"{remote.url}: unpack must be zip or tar, not {remote.unpack!r}")
        source = Path(tmp) / remote.folder if remote.folder else Path(tmp)
        if not source.is_dir():
            raise DataError(f"{remote.url}: the archive has no folder {remote.folder!r}")
        source.rename(target)


def kaggle_token() -> bool:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (folder / "kaggle.json").is_file()


def fetch_kaggle(source: Kaggle, target: Path, dataset: str) -> None:
    """The official client into a folder beside the target, renamed onto it when done."""
    import subprocess

    if not kaggle_token():
        raise DataError(f"dataset {dataset}: Kaggle's {source.ref} needs an API token: "
                        f"{KAGGLE_TOKEN_HELP}")  # fmt: skip
    if shutil.which("kaggle") is None:
        raise DataError(
            f"dataset {dataset}: the kaggle client is not installed: pip install -e '.[kaggle]'"
        )
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=".kaggle-", dir=target.parent, ignore_cleanup_errors=True
    ) as tmp:
        subprocess.run([*source.command, "-p", tmp], check=True)
        _unzip_competition_files(Path(tmp))
        folder = Path(tmp) / source.folder if source.folder else Path(tmp)
        if not folder.is_dir():
            raise DataError(f"dataset {dataset}: Kaggle's {source.ref} has no folder "
                            f"{source.folder!r}; it holds {sorted(os.listdir(tmp))}")  # fmt: skip
        folder.rename(target)


def lands_as_folder(spec: str | dict[str, Any]) -> bool:
    """Whether a download entry produces a folder (archives, Kaggle, manual) or one file."""
    source = resolve(spec, "?")
    return not isinstance(source, Remote) or source.unpack is not None


def _unzip_competition_files(folder: Path) -> None:
    """`kaggle competitions download` leaves zip files (datasets are unzipped by --unzip)."""
    for archive in folder.glob("*.zip"):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(folder)
        archive.unlink()


def download_dataset(spec: str | dict[str, Any], target: Path, dataset: str) -> None:
    """Whatever the dataset's `download` entry names, into `target`."""
    source = resolve(spec, dataset)
    if isinstance(source, Manual):
        raise DataError(f"dataset {dataset} cannot be downloaded automatically; place it at "
                        f"{target}: {source.steps}")  # fmt: skip
    if isinstance(source, Kaggle):
        fetch_kaggle(source, target, dataset)
    elif isinstance(source, Files):
        fetch_files(source, target, dataset)
    else:
        fetch(source, target, dataset)
