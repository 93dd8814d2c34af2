"""Shared test set-up: isolate this run's DDS traffic from other ROS 2 processes on the machine."""

import os
import random

# Each pytest run talks on its own ROS domain and only over loopback, so parallel runs (and other
# ROS users on the machine) never see each other's topics. Set before rclpy is first imported.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the line above
