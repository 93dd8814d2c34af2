"""Device choice and (optional) DistributedDataParallel setup for the training CLIs.

`torchrun --nproc_per_node N -m training.train_unet ...` sets WORLD_SIZE/RANK/LOCAL_RANK and DDP
switches on by itself; `--ddp` forces a process group even for a plain single process (world size 1,
used by the tests to exercise the DDP path on CPU with gloo).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    ddp: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(ddp: bool = False, device: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not (ddp or world > 1):
        return DistInfo(0, 1, 0, pick_device(device), False)
    if "RANK" not in os.environ:  # a plain `python -m ... --ddp`: a one-process group
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def teardown(info: DistInfo) -> None:
    if info.ddp and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.ddp and info.world_size > 1:
        x = x.detach().clone()
        dist.all_reduce(x)
        x /= info.world_size
    return x


def barrier(info: DistInfo) -> None:
    if info.ddp:
        dist.barrier()
