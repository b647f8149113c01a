"""Data-parallel training across processes, on PyTorch's own engine (torch.distributed).

Started by `torchrun --nproc-per-node=N -m digitlab train ...`, each process (rank) trains on its
own shard of every epoch: all ranks draw the same shuffled order, rank r takes every N-th image
starting at r (DistributedSampler's split) and batches of batch_size / N from it, so one step of
all ranks together sees the same batch_size images a single process would. After each backward the
ranks average their gradients, so every rank applies the same update and the weights stay equal.

- torch backend: DistributedDataParallel does the averaging, overlapped with the backward.
- scratch backend: after the hand-written backward, one all_reduce of all gradients at once (the
  same idea as DDP, without the overlap), in `average_gradients`.

gloo carries the messages on CPU, nccl on CUDA. Only rank 0 writes files and prints.

Windows: PyTorch's Windows builds have gloo but no NCCL, so data-parallel runs there train on the
CPU (--device cuda under torchrun is refused in one line, in `start`); and their TCPStore lacks
libuv, so torchrun needs USE_LIBUV=0 in its environment (`set USE_LIBUV=0` first).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from digitlab.errors import DigitlabError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The rank that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def torchrun_command(processes: int, *args: str) -> list[str]:
    """The command line that runs `digitlab ARGS` in `processes` processes on this machine:
    torchrun (as python -m torch.distributed.run) --standalone, whose rendezvous store binds a
    free port itself (picking one and releasing it first would race with other programs)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "digitlab",
        *args,
    ]


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> Ranks:
    """Join the process group torchrun set up (a single-process run: no group, rank 0 of 1)."""
    if not launched():
        return Ranks()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and not dist.is_nccl_available():
            # PyTorch on Windows (and macOS) is built without NCCL; gloo there cannot all_gather
            # CUDA tensors, which the rank check at the end needs.
            raise DigitlabError(
                "--device cuda under torchrun: this PyTorch has no NCCL (Windows builds never "
                "do); train data-parallel with --device cpu (gloo), or in one process on the GPU"
            )
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return Ranks(dist.get_rank(), dist.get_world_size())


def stop(finished: bool = False) -> None:
    """Leave the process group. A finished run first waits for every rank (a barrier), so that
    none tears its connections down while a peer may still be using them (one fresh-clone run of
    the suite saw rank 0 abort at the end of a data-parallel run, "terminate called without an
    active exception"). After an error, leave at once: a barrier could wait forever on a rank
    stuck in another collective, and torchrun stops the others."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def local_batch(batch_size: int, ranks: Ranks) -> int:
    """Each rank's share of a step's `batch_size` images."""
    if batch_size % ranks.world:
        raise DigitlabError(
            f"--batch-size {batch_size}: must divide evenly among the {ranks.world} processes; "
            f"choose a multiple of {ranks.world}"
        )
    return batch_size // ranks.world


def shard(order: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's part of an epoch's order: every world-th index from position rank; the order
    is first cut to a multiple of world so that all ranks take the same number of steps."""
    usable = len(order) - len(order) % ranks.world
    return order[ranks.rank : usable : ranks.world]


def average_in_place(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks: one all_reduce of one flat buffer."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def average_gradients(parameters) -> None:
    """Replace each .grad by its mean over the ranks."""
    average_in_place([p.grad for p in parameters if p.grad is not None])


def mean(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of a tensor over the ranks (the batch loss the whole step saw)."""
    if ranks.world == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / ranks.world


def average_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Give every rank the mean over the ranks of each floating buffer (batch norm's running
    mean and variance), so that all ranks hold one model; integer buffers (batches seen) are the
    same on every rank already. One all_reduce per epoch: far cheaper than SyncBatchNorm's one
    per layer per step, and the statistics still come from every rank's images."""
    if ranks.world > 1:
        average_in_place([b for b in model.buffers() if b.is_floating_point()])


def check_same_weights(model: torch.nn.Module, ranks: Ranks) -> None:
    """Raise unless every rank holds exactly rank 0's parameters and buffers: what averaging the
    gradients promises, checked once at the end of a run (one all_gather)."""
    if ranks.world == 1:
        return
    state = [t.detach().reshape(-1).double() for t in model.state_dict().values()]
    flat = torch.cat(state)
    gathered = [torch.empty_like(flat) for _ in range(ranks.world)]
    dist.all_gather(gathered, flat)
    differ = [r for r, other in enumerate(gathered) if not torch.equal(other, gathered[0])]
    if differ:
        raise DigitlabError(
            f"data-parallel ranks {differ} ended with weights that differ from rank 0's; "
            "this is a bug in digitlab, please report it"
        )
