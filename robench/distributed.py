"""Several processes, one result: who am I, how many are we, and the few collectives robench needs.

robench runs under any launcher that sets the torch.distributed environment (``torchrun``,
``accelerate launch --multi_cpu`` / ``--multi_gpu``, Slurm's ``srun`` with the variables set).
The process group is Accelerate's (``PartialState``): gloo on CPU, NCCL on CUDA. Nothing here
starts processes.

A launch that *asks* for several processes (``WORLD_SIZE`` > 1 in the environment) but ends up
in a group of one is refused with one line: two independent trainings writing the same run
directory are worse than an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from robench.errors import ConfigError

LAUNCH_HINT = ("launch N processes with 'torchrun --nproc_per_node N -m robench.cli -- train ...' (the '--' keeps "
               "torchrun from reading robench's options) or 'accelerate launch --multi_gpu --num_processes N -m "
               "robench.cli train ...' (on a CPU-only machine both form a gloo group; 'accelerate launch --cpu' "
               "always starts one process)")


def _accelerate_simple_launch() -> int:
    """Processes asked of Accelerate's one-process launcher (``accelerate launch --cpu --num_processes N``
    starts ONE process and says nothing): read from the parent's command line where Linux shows it."""
    if "ACCELERATE_USE_CPU" not in os.environ:
        return 1
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return 1
    if "launch" not in args:
        return 1
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--num_processes" and i + 1 < len(args) else (
            arg.split("=", 1)[1] if arg.startswith("--num_processes=") else None)
        if value is not None:
            try:
                return max(int(value), 1)
            except ValueError:
                return 1
    return 1


def requested_world_size() -> int:
    """The number of processes the launcher asked for (1 when not launched as a group)."""
    for var in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(var)
        if value:
            try:
                return max(int(value), 1)
            except ValueError:
                raise ConfigError(f"environment variable {var}={value!r} is not a number of processes") from None
    return _accelerate_simple_launch()


def state(device: str | torch.device = "cpu"):
    """Accelerate's process state, initialising the process group on first use (gloo on CPU).

    Checks that a launch asking for N processes really formed a group of N."""
    from accelerate.state import PartialState

    cpu = torch.device(device).type == "cpu"
    st = PartialState(cpu=cpu)
    wanted = requested_world_size()
    if wanted > 1 and st.num_processes != wanted:
        raise ConfigError(f"the launcher asked for {wanted} processes but this one runs alone "
                          f"({st.distributed_type}, process {st.process_index} of {st.num_processes}); "
                          f"every process would write the same results. Launch {LAUNCH_HINT[7:]}")
    return st


_ALONE = [False]  # set by alone(): this process works by itself inside a launched group


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Within the block this process uses no collective (rank 0 of 1), even inside a process group: for work
    one rank does by itself while the others go on (the Trainer callback's evaluation), which would otherwise
    wait forever on ranks that never join."""
    before = _ALONE[0]
    _ALONE[0] = True
    try:
        yield
    finally:
        _ALONE[0] = before


def is_distributed() -> bool:
    return not _ALONE[0] and torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


def rank() -> int:
    return torch.distributed.get_rank() if is_distributed() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        torch.distributed.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def shard(items: list[Any], index: int | None = None, count: int | None = None) -> list[Any]:
    """The contiguous 1/count slice of ``items`` owned by ``index`` (this rank by default): concatenating
    the slices of ranks 0..count-1 gives ``items`` back in order, each item exactly once."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}")
    n = len(items)
    start = (n * index) // count
    stop = (n * (index + 1)) // count
    return items[start:stop]
