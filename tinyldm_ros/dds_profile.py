"""The shipped Fast DDS profile for camera-sized images between processes (docs/node.md).

Fast DDS's default shared-memory segment (512 KB) is smaller than a 640x480 rgb8 image, which then
crosses UDP loopback in fragments (14 ms here instead of 3-4 ms). The profile enlarges the segment;
it must be in the environment of the process that *publishes* the images (the camera driver).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from tinyldm_ros.package_paths import shipped

# Fast DDS 2.x (Humble, Jazzy) reads the first name, 3.x (Kilted on) the second.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_large_images.xml"


def large_image_profile() -> Path:
    """config/fastdds_large_images.xml of the installed package, else of the checkout."""
    return shipped("config", PROFILE_NAME) / PROFILE_NAME


def set_profile(environ: MutableMapping[str, str], profile: Path | None) -> None:
    """Make processes started with `environ` load `profile`; None: Fast DDS's built-in defaults."""
    for name in PROFILE_VARIABLES:
        if profile is None:
            environ.pop(name, None)
        else:
            environ[name] = str(profile)


def launch_actions() -> list:
    """For launch files, before their nodes: a `fastdds_profile` argument (default: the profile the
    environment already names, else the shipped one; '' = Fast DDS defaults) and the environment
    that makes the processes launched after it load that profile."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.substitutions import EnvironmentVariable, LaunchConfiguration

    def apply(context) -> list:
        profile = LaunchConfiguration("fastdds_profile").perform(context)
        return [SetEnvironmentVariable(name, profile) for name in PROFILE_VARIABLES] if profile else []

    return [
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(PROFILE_VARIABLES[0], default_value=str(large_image_profile())),
            description="Fast DDS XML profile for the processes started here (default: the shipped "
            "config/fastdds_large_images.xml, which carries camera images over shared memory; '' = "
            "Fast DDS defaults). The camera driver needs it too: see docs/node.md.",
        ),
        OpaqueFunction(function=apply),
    ]
