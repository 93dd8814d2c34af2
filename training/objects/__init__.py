"""Object sets for the renderer: each maps (rng, split) to the Parts of one random object."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.objects.cars import sample_car
from training.objects.mesh_cars import SRN_LIGHT, sample_mesh_car
from training.objects.parts import Part
from training.objects.pybullet_objects import sample_object
from training.objects.torcs_cars import prepare_torcs, sample_torcs_car

ObjectSampler = Callable[[np.random.Generator, str], list[Part]]

OBJECT_SETS: dict[str, ObjectSampler] = {
    # Procedural cars never repeat, so every split draws from the same generator.
    "cars": lambda rng, split: sample_car(rng),
    # Meshes are split by file, so the split picks the pool.
    "objects": sample_object,
    # Real car models are split by file too (training.objects.mesh_cars.split_of).
    "meshcars": sample_mesh_car,
    # Debian's torcs-data, fetched at render time (training.objects.torcs_fetch), split by car model.
    "torcs": sample_torcs_car,
}

# Light of each set's renders (pybullet light arguments); a set not named here uses the renderer's default.
SET_LIGHTS: dict[str, dict] = {"meshcars": SRN_LIGHT, "torcs": SRN_LIGHT}

# Run once in the main process before a set's objects are built (fetching data the workers then share);
# each returns a line or two for the log (the torcs set: its cars by split).
SET_PREPARE: dict[str, Callable[[], str]] = {"torcs": prepare_torcs}
