"""`make setup` stops with a message naming what is missing (unsupported Python, no package index)."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    any(Path(f"/opt/ros/{d}/setup.bash").exists() for d in ("jazzy", "humble", "kilted", "rolling")),
    reason="a system ROS 2 is installed: set-up then uses the system Python, not the PyPI-wheel checks",
)


def _copy_setup_inputs(dst: Path) -> Path:
    for name in ("scripts", "requirements"):
        shutil.copytree(ROOT / name, dst / name)
    shutil.copy(ROOT / "setup.py", dst / "setup.py")
    return dst / "scripts" / "setup.sh"


def _run(script: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "ROS_DISTRO"))}
    full_env.update(env)
    return subprocess.run(
        ["bash", str(script)], env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


def test_unsupported_python_is_named(tmp_path: Path) -> None:
    others = [
        p
        for p in sorted(glob.glob("/root/.pyenv/versions/3.1[02-9]*/bin/python3")) + ["/usr/bin/python3.12"]
        if Path(p).exists()
    ]
    if not others:
        pytest.skip("no Python other than 3.11 on this machine to try set-up with")
    result = _run(_copy_setup_inputs(tmp_path), PYTHON=others[0])
    assert result.returncode != 0
    assert "need Python 3.11" in result.stderr, result.stderr
    assert not (tmp_path / ".venv").exists(), "nothing should be created for an unsupported Python"


def test_unreachable_package_index_is_named(tmp_path: Path) -> None:
    result = _run(
        _copy_setup_inputs(tmp_path),
        # A closed loopback port stands in for "no network"; no local wheel folders either.
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_FIND_LINKS="",
        PIP_EXTRA_INDEX_URL="",
        PIP_RETRIES="0",
        PIP_DEFAULT_TIMEOUT="3",
    )
    assert result.returncode != 0
    assert "could not install" in result.stderr, result.stderr
    assert "package index reachable" in result.stderr, result.stderr
