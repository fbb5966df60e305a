"""Several training processes (`torchrun --nproc_per_node N -m vedcli train ...`): who we are, and talking to the rest.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1 `ved train` joins the
process group (gloo on CPU, nccl on CUDA) and every collective below talks to the other processes. In a single
process each of them is the identity, so the training loop reads the same either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import OptionError, option


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    @classmethod
    def start(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun describes in the environment; a lone process when there is none."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=device)
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            if local >= torch.cuda.device_count():
                raise OptionError(
                    f"process {local} has no GPU of its own ({torch.cuda.device_count()} visible)",
                    option("nproc_per_node"),
                )
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
        return cls(rank, world, local, device)

    def stop(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """`value` summed over every process (a new tensor)."""
        value = value.detach().clone().to(self.device)
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def any(self, flag: bool) -> bool:
        """True when `flag` is true in some process."""
        if not self.enabled:
            return flag
        return bool(self.sum(torch.tensor(int(flag))).item())

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order (picklable objects)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` in every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()
