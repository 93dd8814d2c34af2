"""Shared test set-up: isolate this run's DDS traffic from other ROS 2 processes on the machine."""

import os
import random

import pytest

# Each pytest run talks on its own ROS domain and only over loopback, so parallel runs (and other
# ROS users on the machine) never see each other's topics. Set before rclpy is first imported.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the line above


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny torch models on a shared 2-core machine: a second torch thread mostly waits for a busy
    core (measured ~70x slower). Modules opt in with pytest.mark.usefixtures; no-op without torch."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ros_context():
    """One rclpy context per test module that starts real nodes."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()
