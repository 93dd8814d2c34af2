"""Debian's `torcs-data` package, fetched by name when first needed and never part of the project.

    root = torcs_root()  # .../usr/share/games/torcs, with cars/ and drivers/

The cache folder (`TINYLDM_TORCS_CACHE`, default ~/.cache/tinyldm_ros/torcs) is looked in first for a
`torcs-data_*.deb`; without one, `apt-get download torcs-data` puts it there. Only the parts the
`torcs` set reads (cars, drivers' liveries, the copyright file) are unpacked, next to the .deb.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

PACKAGE = "torcs-data"
CACHE_ENV = "TINYLDM_TORCS_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "tinyldm_ros" / "torcs"
DATA_DIR = "usr/share/games/torcs"
# The package is 333 MB (526 MB unpacked, mostly tracks and sounds); the cars and liveries are ~20 MB.
_WANTED = (f"{DATA_DIR}/cars/", f"{DATA_DIR}/drivers/", f"usr/share/doc/{PACKAGE}/copyright")
_DONE = ".unpacked"  # written last, so a half-unpacked folder is never taken for a whole one


class TorcsDataError(RuntimeError):
    """torcs-data could be neither found in the cache nor fetched, or its .deb is unreadable."""


def cache_dir(cache: str | Path | None = None) -> Path:
    """`cache`, else $TINYLDM_TORCS_CACHE, else ~/.cache/tinyldm_ros/torcs."""
    return Path(cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def find_deb(cache: Path) -> Path | None:
    """The newest-named torcs-data .deb in `cache`, if any."""
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb")) if cache.is_dir() else []
    return debs[-1] if debs else None


def download_deb(cache: Path) -> Path:
    """`apt-get download torcs-data` into `cache`; the .deb it wrote."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise TorcsDataError(
            f"no {PACKAGE}_*.deb in {cache} and no apt-get on PATH to fetch it: run "
            f"'apt-get download {PACKAGE}' on a Debian/Ubuntu machine and put the .deb in {cache} "
            f"(or point ${CACHE_ENV} / --torcs-cache at a folder holding it)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([apt, "download", PACKAGE], cwd=cache, capture_output=True, text=True)
    deb = find_deb(cache)
    if result.returncode != 0 or deb is None:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise TorcsDataError(
            f"'apt-get download {PACKAGE}' in {cache} failed (exit {result.returncode}): "
            f"{detail[-1] if detail else 'no output'} (is a Debian/Ubuntu archive with {PACKAGE} in "
            f"the apt sources, and 'apt-get update' run?)"
        )
    return deb


def _unpack(deb: Path, dest: Path) -> None:
    """The wanted members of `deb` into `dest` (dpkg-deb streams the data tar, tarfile filters it)."""
    dpkg = shutil.which("dpkg-deb")
    if dpkg is None:
        raise TorcsDataError(f"{deb}: dpkg-deb is needed to unpack it and is not on PATH")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    command = [dpkg, "--fsys-tarfile", str(deb)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    problem = ""
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./").startswith(_WANTED):
                    tar.extract(member, tmp, filter="data")
    except tarfile.TarError as e:
        problem = f"not a readable .deb ({e})"
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        code = proc.wait()
    if not problem and (code != 0 or not (tmp / DATA_DIR / "cars").is_dir()):
        problem = f"dpkg-deb could not unpack it (exit {code})"
    if problem:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TorcsDataError(f"{deb}: {problem}: {err or 'no cars/ inside'}")
    (tmp / _DONE).write_text(deb.name + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def torcs_root(cache: str | Path | None = None) -> Path:
    """The unpacked TORCS data folder (cars/, drivers/), fetching and unpacking the .deb if needed."""
    folder = cache_dir(cache)
    deb = find_deb(folder) or download_deb(folder)
    dest = folder / deb.name.removesuffix(".deb")
    if not (dest / _DONE).is_file():
        _unpack(deb, dest)
    return dest / DATA_DIR
