"""Object sets for the renderer: each maps (rng, split) to the Parts of one random object."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.objects.cars import sample_car
from training.objects.parts import Part
from training.objects.pybullet_objects import sample_object

ObjectSampler = Callable[[np.random.Generator, str], list[Part]]

OBJECT_SETS: dict[str, ObjectSampler] = {
    # Procedural cars never repeat, so every split draws from the same generator.
    "cars": lambda rng, split: sample_car(rng),
    # Meshes are split by file, so the split picks the pool.
    "objects": sample_object,
}
