"""Scalars of a training run: a CSV file (easy to diff and plot) and TensorBoard event files.

On resume from step k, rows logged after k by the interrupted run are dropped from the CSV and
TensorBoard is told to purge them, so both logs read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLog:
    def __init__(self, out_dir: Path, start_step: int = 0, tensorboard: bool = True):
        self.csv_path = out_dir / "log.csv"
        self.columns: list[str] | None = None
        if start_step > 0 and self.csv_path.is_file():
            with open(self.csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.columns = list(rows[0].keys())
                self._write_rows([r for r in rows if int(r["step"]) <= start_step])
        elif self.csv_path.exists():
            self.csv_path.unlink()
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=start_step or None) if tensorboard else None

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        # Temp file + rename: a run killed while the log is rewritten on resume keeps its history.
        tmp = self.csv_path.with_name(self.csv_path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.csv_path)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        row = {"step": step, **scalars}
        if self.columns is None:
            self.columns = list(row.keys())
            self._write_rows([])
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
