"""Checkpoints: everything a run needs to continue exactly where it stopped, and where it is kept.

A checkpoint holds the model, the optimizer's moments, the LR schedule's step, every rank's data position
(the exact next sequence of its stream) and every rank's RNG states, so N steps, a stop and N more give
the same losses as 2N straight. Under FSDP the model and optimizer are gathered into one full,
unsharded state on rank 0 (and broadcast back from it on load), so a checkpoint does not depend on how
parameters were sharded, only on the number of ranks (each has its own data position and RNG).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from curate.core.errors import CurateError
from curate.train.data import Position

CHECKPOINTS_KEPT = 2  # older checkpoints are deleted once a newer one is safely on disk


class Checkpoints:
    """`DIR/checkpoints/step-NNNNNNNN.pt`, written atomically; `latest` names the newest complete one."""

    def __init__(self, output: Path):
        self.folder = output / "checkpoints"

    def latest(self) -> Path | None:
        pointer = self.folder / "latest"
        if not pointer.is_file():
            return None
        path = self.folder / pointer.read_text().strip()
        if not path.is_file():
            raise CurateError(
                f"{pointer} names {path.name}, which is missing; delete {pointer} to start over"
            )
        return path

    def save(self, step: int, state: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step-{step:08d}.pt"
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, path)
        (self.folder / "latest.tmp").write_text(path.name + "\n")
        os.replace(self.folder / "latest.tmp", self.folder / "latest")
        for old in sorted(self.folder.glob("step-*.pt"))[:-CHECKPOINTS_KEPT]:
            old.unlink()
        return path


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's state, on the CPU (the trainer moves it where it belongs)."""
    # weights_only=False: the state holds numpy's and Python's RNG states, which are not plain tensors.
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


# ------------------------------------------------------------------------------------------ RNG


def rng_state() -> dict[str, Any]:
    """This process's torch, numpy, Python (and CUDA, when present) generator states."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_from_ranks(obj: Any, world: int) -> list[Any]:
    """`obj` of every rank, in rank order, on every rank (for per-rank data positions and RNG states)."""
    if world == 1:
        return [obj]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


# ------------------------------------------------------------------------------------------ model + optimizer


def model_and_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, sharded: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full state dicts; with FSDP (`sharded`) gathered from all ranks and offloaded to the CPU."""
    if not sharded:
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_model_and_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], sharded: bool
) -> None:
    """Load `state["model"]` and `state["optimizer"]`; with FSDP, rank 0's full state is broadcast."""
    if not sharded:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=state["model"],
        optim_state_dict=state["optimizer"],
        options=options,
    )


def check_resumable(state: dict[str, Any], path: Path, world: int, model_config: dict[str, Any]) -> None:
    """Refuse a checkpoint that this run cannot continue exactly: other rank count or model shape."""
    if len(state["data"]) != world:
        raise CurateError(
            f"{path}: saved by {len(state['data'])} ranks, resumed by {world}; "
            "resume with the same number of processes"
        )
    if state["model_config"] != model_config:
        raise CurateError(f"{path}: the model shape differs from --preset/--seq-len; use the saved one")


# ------------------------------------------------------------------------------------------ the whole state


@dataclass(frozen=True)
class TrainingParts:
    """What a checkpoint saves and restores, as one rank sees it."""

    model: nn.Module  # the bare model (not the DDP or compiled wrapper); FSDP-sharded when `sharded`
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sharded: bool
    rank: int
    world: int


def capture(parts: TrainingParts, step: int, position: Position, configs: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's state (every rank must call it; only rank 0's copy is written).

    `configs` are stored as they are (`model_config`, checked on resume; `train_config`, for the record).
    """
    model_state, optimizer_state = model_and_optimizer_state(parts.model, parts.optimizer, parts.sharded)
    return {
        "step": step,
        "model": model_state,
        "optimizer": optimizer_state,
        "scheduler": parts.scheduler.state_dict(),
        "data": gather_from_ranks(position.to_dict(), parts.world),
        "rng": gather_from_ranks(rng_state(), parts.world),
        **configs,
    }


def restore(
    parts: TrainingParts, state: dict[str, Any], path: Path, model_config: dict[str, Any]
) -> tuple[int, Position]:
    """Load `state` into the parts and this rank's RNG; returns the step and this rank's data position."""
    check_resumable(state, path, parts.world, model_config)
    load_model_and_optimizer(parts.model, parts.optimizer, state, parts.sharded)
    parts.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][parts.rank])
    return int(state["step"]), Position.from_dict(state["data"][parts.rank])
