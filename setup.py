"""pip install . (runtime) / pip install ".[train]" (training), with or without ROS.

With ROS, the package is built by `colcon build` as ament_cmake (CMakeLists.txt), which also
generates the tinyldm_ros.srv / tinyldm_ros.msg interfaces; this file serves ML users without ROS.
"""

from pathlib import Path

from setuptools import find_packages, setup


def requirements(name: str) -> list[str]:
    """One list of dependencies, shared with `make setup` (requirements/<name>.txt)."""
    text = (Path(__file__).parent / "requirements" / f"{name}.txt").read_text()
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


setup(
    name="tinyldm_ros",
    version="0.1.0",
    description="Novel view synthesis from a single image with a tiny latent diffusion model, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyldm_ros", "tinyldm_ros.*", "training", "training.*"]),
    package_data={"training": ["configs/*.yaml"]},
    install_requires=requirements("runtime"),
    extras_require={"train": requirements("train"), "ros": requirements("ros"), "dev": requirements("dev")},
    entry_points={
        "console_scripts": [
            "tinyldm-train-vae = training.train_vae:cli",
            "tinyldm-encode-latents = training.encode_latents:cli",
            "tinyldm-train-unet = training.train_unet:cli",
            "tinyldm-sample = training.sample:cli",
            "tinyldm-export=training.export:main",
        ],
    },
)
