"""training.mix_sets on rendered sets: links every instance per split, reads back as one set, and
refuses what would overwrite or mix up data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import mix_sets
from training.srn_dataset import load_split

ROOT = Path(__file__).resolve().parents[1]


def _render(out: Path, object_set: str, seed: int = 0, test: int = 1) -> Path:
    cmd = [sys.executable, "-m", "training.render", "--set", object_set, "--out", str(out)]
    cmd += ["--train", "2", "--val", "1", "--test", str(test), "--views", "2", "--test-views", "2"]
    cmd += ["--size", "32", "--workers", "1", "--seed", str(seed)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {
        "cars": _render(root / "cars", "cars"),
        "meshcars": _render(root / "meshcars", "meshcars", test=0),  # a set without a test split
        "cars_again": _render(root / "cars_again", "cars", seed=1),  # same instance names as cars
    }


def test_mix_links_every_instance_and_reads_back(sets, tmp_path, capsys):
    out = tmp_path / "data" / "mixed"
    assert mix_sets.main(["--out", str(out), str(sets["cars"]), str(sets["meshcars"])]) == 0
    assert "4 train, 2 val, 1 test" in capsys.readouterr().out
    for split, expected in (("train", 4), ("val", 2), ("test", 1)):
        mixed = load_split(out, split, 32)
        assert len(mixed) == expected
        assert {c.name.split("_")[0] for c in mixed} == (
            {"cars", "meshcars"} if split != "test" else {"cars"}
        )
        for car in mixed:
            link = out / split / car.name
            assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # relative: the tree can move
            source = sets[car.name.split("_")[0]] / split / car.name
            assert link.resolve() == source.resolve()
            [original] = [c for c in load_split(source.parent.parent, split, 32) if c.name == car.name]
            np.testing.assert_array_equal(car.images, original.images)
            np.testing.assert_array_equal(car.c2w, original.c2w)


def test_mix_survives_moving_the_data_folder(sets, tmp_path):
    data = tmp_path / "data"
    for name in ("cars", "meshcars"):
        shutil.copytree(sets[name], data / name)  # sources inside the data folder, as data/cars are
    assert mix_sets.main(["--out", str(data / "mixed"), str(data / "cars"), str(data / "meshcars")]) == 0
    moved = data.rename(tmp_path / "elsewhere")
    assert len(load_split(moved / "mixed", "train", 32)) == 4


def test_refuses_a_non_empty_out(sets, tmp_path, capsys):
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "keep.txt").write_text("not ours\n")
    assert mix_sets.main(["--out", str(out), str(sets["cars"])]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_refuses_colliding_names_leaving_nothing(sets, tmp_path, capsys):
    out = tmp_path / "mixed"
    assert mix_sets.main(["--out", str(out), str(sets["cars"]), str(sets["cars_again"])]) == 2
    err = capsys.readouterr().err
    assert "share instance names" in err and "cars_train_00000" in err
    assert not out.exists()  # checked before anything was linked


def test_refuses_a_source_that_is_not_a_set(sets, tmp_path, capsys):
    out = tmp_path / "mixed"
    assert mix_sets.main(["--out", str(out), str(sets["cars"]), str(tmp_path / "missing")]) == 2
    assert "missing: no train, val or test split" in capsys.readouterr().err
    assert not out.exists()
