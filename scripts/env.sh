# Source this file (bash) for a shell with the project's venv, ROS 2 and the built package:
#   source scripts/env.sh
# With a system ROS 2 it sources /opt/ros/<distro>/setup.bash first; with ROS 2 from PyPI the venv
# itself is the ROS prefix. `--no-install-space` skips this package's colcon install space.
_tinyldm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_tinyldm_sys_ros=""
for _d in ${ROS_DISTRO:-} jazzy humble kilted rolling; do
  if [ -f "/opt/ros/$_d/setup.bash" ]; then source "/opt/ros/$_d/setup.bash"; _tinyldm_sys_ros=1; break; fi
done
if [ ! -x "$_tinyldm_root/.venv/bin/python" ]; then
  echo "tinyldm_ros: no virtual environment at $_tinyldm_root/.venv: run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
source "$_tinyldm_root/.venv/bin/activate"
# The checkout itself is the Python path (no install step to go stale); the colcon install space
# adds the generated interfaces below.
case ":${PYTHONPATH:-}:" in *":$_tinyldm_root:"*) ;; *) export PYTHONPATH="$_tinyldm_root${PYTHONPATH:+:$PYTHONPATH}" ;; esac
if [ -z "$_tinyldm_sys_ros" ] && [ -d "$VIRTUAL_ENV/share/ament_cmake" ]; then
  # ROS 2 Jazzy from PyPI: its packages live in the venv's prefix.
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export ROS_DISTRO=jazzy
fi
if [ "${1:-}" != "--no-install-space" ] && [ -f "$_tinyldm_root/install/setup.bash" ]; then
  source "$_tinyldm_root/install/setup.bash"
fi
unset _tinyldm_root _tinyldm_sys_ros _d
