"""pip install . (runtime) / pip install ".[train]" (training), with or without ROS.

With ROS, the package is built by `colcon build` as ament_cmake (CMakeLists.txt), which also
generates the tinyldm_ros.srv / tinyldm_ros.msg interfaces; this file serves ML users without ROS.
"""

from setuptools import find_packages, setup

setup(
    name="tinyldm_ros",
    version="0.1.0",
    description="Novel view synthesis from a single image with a tiny latent diffusion model, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tinyldm_ros", "tinyldm_ros.*", "training", "training.*"]),
    package_data={"training": ["configs/*.yaml"]},
    install_requires=[
        "numpy>=1.24",
        "onnxruntime-gpu>=1.17",  # runs on CPU too; never install `onnxruntime` beside it
        "pyyaml>=6",
        "pillow>=10",
    ],
    extras_require={
        "train": [
            "torch>=2.2",
            "onnx>=1.16",
            "safetensors>=0.4",
            "tensorboard>=2.15",
            "tqdm>=4.66",
            "scikit-image>=0.22",
            "matplotlib>=3.8",
            "pybullet>=3.2.6",
        ],
        "ros": ["rosbags-image>=0.10"],
        "dev": ["pytest>=8", "ruff>=0.5", "psutil>=5.9"],
    },
    entry_points={
        "console_scripts": [],
    },
)
