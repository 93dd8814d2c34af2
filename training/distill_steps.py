"""The two distillation objectives: direct regression on the teacher's samples, and progressive
distillation's stages (each student step learns to land where two steps of its teacher land).

The student predicts z0; a DDIM step from x_t to x_prev with a z0 prediction is
x_prev = a_prev z0 + s_prev (x_t - a_t z0) / s_t  (a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)),
so the z0 that lands a step exactly on a target x_prev is (x_prev - s_prev / s_t x_t) /
(a_prev - s_prev a_t / s_t) — the progressive-distillation target.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from tinyldm_ros.engine import Engine
from training.distill_data import Pairs
from training.errors import UserError
from training.student import Student, one_step


def distance(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return torch.nn.functional.mse_loss(pred, target) if kind == "mse" else (pred - target).abs().mean()


def regression_loss(student: Student, pairs: Pairs, idx: np.ndarray, kind: str) -> torch.Tensor:
    context = torch.from_numpy(pairs.context[idx])
    return distance(one_step(student, context), torch.from_numpy(pairs.teacher[idx]), kind)


class ProgressiveStages:
    """Stage k trains a sampler with steps / 2^(k+1) steps. Stage 0's teacher is the model folder
    (its trajectory states, precomputed); stage k > 0's is the frozen student of stage k - 1."""

    def __init__(self, engine: Engine, pairs: Pairs) -> None:
        ts = [int(t) for t in pairs.timesteps]
        steps = len(ts)
        if steps < 2 or steps & (steps - 1):
            raise UserError(
                f"progressive distillation halves the steps: the teacher's {steps} is not a power of 2"
            )
        if ts[0] != engine.info.num_train_timesteps - 1:
            raise UserError(f"the teacher's first timestep is {ts[0]}, the one-step student starts at T - 1")
        self.pairs, self.timesteps, self.count = pairs, ts, steps.bit_length() - 1
        self._alpha_bar = engine.schedule.alpha_bar
        self.stage = 0
        self.frozen: Student | None = None

    def enter(self, stage: int, student: Student) -> bool:
        """Begin `stage`; True when the optimizer should start afresh (a new teacher)."""
        if stage == self.stage and (stage == 0 or self.frozen is not None):
            return False
        self.stage = stage
        self.frozen = copy.deepcopy(student).eval().requires_grad_(False)
        return True

    def _a_s(self, t: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ab = torch.tensor([self._alpha_bar(int(v)) for v in t], dtype=torch.float32)[:, None, None, None]
        return ab.sqrt(), (1 - ab).sqrt()

    def _step(self, x: torch.Tensor, z0: torch.Tensor, t: np.ndarray, t_prev: np.ndarray) -> torch.Tensor:
        a, s = self._a_s(t)
        ap, sp = self._a_s(t_prev)
        return ap * z0 + sp * (x - a * z0) / s

    def loss(self, student: Student, idx: np.ndarray, rng: np.random.Generator, kind: str) -> torch.Tensor:
        stride = 1 << self.stage  # the teacher's step, in the model folder's timesteps
        ts = self.timesteps[::stride] + [-1]  # the teacher's timesteps, then clean data
        n_teacher = len(ts) - 1
        context = torch.from_numpy(self.pairs.context[idx])
        if self.frozen is None:  # stage 0: the model folder's own states
            states = torch.from_numpy(self.pairs.trajectory[:, idx])
        else:
            with torch.no_grad():
                states = [torch.zeros((len(idx), *student.latent_shape))]
                for i in range(n_teacher):
                    t, tp = np.full(len(idx), ts[i]), np.full(len(idx), ts[i + 1])
                    z0 = self.frozen(states[-1], torch.from_numpy(t), context)
                    states.append(self._step(states[-1], z0, t, tp))
                states = torch.stack(states)
        j = 2 * rng.integers(n_teacher // 2, size=len(idx))  # the teacher state the student step starts at
        rows = torch.arange(len(idx))
        x_t, x_target = states[j, rows], states[j + 2, rows]
        t, t_prev = np.array(ts)[j], np.array(ts)[j + 2]
        a, s = self._a_s(t)
        ap, sp = self._a_s(t_prev)
        z0_target = (x_target - sp / s * x_t) / (ap - sp * a / s)
        return distance(student(x_t, torch.from_numpy(t), context), z0_target, kind)
