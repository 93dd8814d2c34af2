"""Mix rendered sets into one SRN-layout tree of links, without copying a view:

    python -m training.mix_sets --out data/mixed data/cars data/meshcars

Each split of the output holds a link to every instance of that split in every input set (instance
names carry their set, so they never collide). Training on the mix sees each set in proportion to its
instance count.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from training.srn_dataset import list_instances

SPLITS = ("train", "val", "test")


def _instances(source: Path, split: str) -> list[Path]:
    """The split's instances of one source (none if it lacks the split; cars_val-style names read too)."""
    try:
        return list_instances(source, split)
    except FileNotFoundError:
        return []


def mix_sets(out: Path, sources: list[Path]) -> dict[str, int]:
    """Link every instance of each source's splits into out/<split>/; returns instances per split."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    per_source = {src: {split: _instances(src, split) for split in SPLITS} for src in sources}
    for src, splits in per_source.items():
        if not any(splits.values()):
            raise FileNotFoundError(f"{src}: no train, val or test split (not a rendered set?)")
    found = {split: [p for splits in per_source.values() for p in splits[split]] for split in SPLITS}
    # every split checked before anything is linked, so a refused mix leaves no half-made tree
    for split, instances in found.items():
        names = [p.name for p in instances]
        if len(set(names)) != len(names):
            shared = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(
                f"{split}: the sources share instance names ({', '.join(shared[:3])}); cannot mix"
            )
    counts = {}
    for split, instances in found.items():
        if not instances:
            continue
        (out / split).mkdir(parents=True, exist_ok=True)
        for p in instances:
            # relative links, so the mix survives moving its data folder as a whole
            os.symlink(os.path.relpath(p.resolve(), (out / split).resolve()), out / split / p.name)
        counts[split] = len(instances)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.mix_sets", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="the mixed tree to create")
    p.add_argument("sources", nargs="+", type=Path, help="rendered SRN-layout roots (data/cars ...)")
    args = p.parse_args(argv)
    try:
        counts = mix_sets(args.out, args.sources)
    except (OSError, ValueError) as e:
        print(f"mix_sets: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
