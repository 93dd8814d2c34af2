"""Where the package's shipped files are: the colcon install's share directory, else the checkout."""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def shipped(relative: str, marker: str = "") -> Path:
    """`share/tinyldm_ros/<relative>` of an installed package when it exists (and holds `marker`, if
    given), else `<checkout>/<relative>`: the same names in both (CMakeLists.txt installs them)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("tinyldm_ros")) / relative
        if installed.is_dir() and (not marker or (installed / marker).exists()):
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return CHECKOUT / relative
