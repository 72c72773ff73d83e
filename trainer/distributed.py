"""Rank helpers for training under torchrun (DDP): which process this is, and agreement between ranks.

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``/``MASTER_PORT`` in each worker's
environment; without them (a plain ``tuneserve train``) this is rank 0 of a world of one, every helper is
a no-op, and the single-process path stays as it was.

Rank 0 is the one that decides and writes: it evaluates, checks for cancellation, reports progress and
writes the checkpoint folder; ``broadcast`` and ``agree`` hand its decisions to the other ranks, so that
all of them stop at the same step and keep the same best epoch.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, TypeVar

import structlog
import torch
import torch.distributed as dist

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Rank 0 evaluates while the others wait in a broadcast: long enough for a slow evaluation on a big
# validation set, short enough that a wedged rank fails the job within the hour.
TIMEOUT = timedelta(minutes=30)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """True on the rank that evaluates, reports and writes (rank 0, or the only process)."""
    return rank() == 0


def backend(device: torch.device) -> str:
    """gloo for CPU training, NCCL for CUDA."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(device: torch.device) -> torch.device:
    """Join the process group (once) when launched by torchrun; the device this rank trains on (its
    ``cuda:LOCAL_RANK`` on a GPU host)."""
    if not is_distributed():
        return device
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise RuntimeError(
                f"local rank {local_rank()} has no GPU: this host has {torch.cuda.device_count()}; "
                "give --nproc-per-node at most that many"
            )
        torch.cuda.set_device(local_rank())
        device = torch.device("cuda", local_rank())
    if not dist.is_initialized():
        dist.init_process_group(backend(device), timeout=TIMEOUT)
        log.debug("process group", rank=rank(), world_size=world_size(), backend=backend(device))
    return device


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object); the value itself in a single process."""
    if not (is_distributed() and dist.is_initialized()):
        return value
    box: list[Any] = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank; ``[value]`` in a single process."""
    if not (is_distributed() and dist.is_initialized()):
        return [value]
    found: list[Any] = [None] * world_size()
    dist.all_gather_object(found, value)
    return found


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (a one-element tensor, cheap enough for every step)."""
    if not (is_distributed() and dist.is_initialized()):
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def teardown() -> None:
    """Leave the process group (at the end of a worker), so that its sockets close before exit."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
