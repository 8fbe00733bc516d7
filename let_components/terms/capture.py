"""Reading the output of student block k without owning the student's forward.

A forward hook on the object that sits in `model.layers[str(k)]` AFTER parallelize: torchtitan's outermost wrapper
of the block (torch.compile's OptimizedModule around the activation-checkpoint wrapper for dense blocks, FSDP2's
module class on top; the checkpoint wrapper or the block itself for MoE blocks, whose submodules are compiled).
There the hook runs in eager Python once per forward: outside the compiled graph (a hook on the inner block would
be traced into it) and not again when activation checkpointing recomputes the block in backward (recomputation
calls the inner block, not this object). Nothing in `layers` is replaced, so MoE load balancing and checkpoints see
torchtitan's own structure.

The learned projection runs inside the hook, i.e. during the student's root forward, while FSDP2 holds the root
group's parameters (the projection's) unsharded. The hook is registered only around a student forward that aligns,
so validation and every step after stop_step run without it.

Under tensor parallelism torchtitan's plan hands each block's output on as a plain local tensor sharded along the
sequence (sequence parallel): rank r of the TP mesh holds positions [r S/tp, (r + 1) S/tp). `SequenceShard` cuts
the full-sequence tensors the term pairs with it (the teacher's target, the valid mask) to the same positions.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torchtitan.distributed import ParallelDims


class BlockCapture:
    """Keeps the (projected) output of one student block for the forward in flight.

    `model_parts`: the student's parts on this rank (one; under pipeline parallelism its stages here). The block and
    the projection that travels with it are found in the part that holds them; `block` is None on a rank whose
    stages hold neither."""

    def __init__(self, model_parts: list[nn.Module], layer: int):
        holder = next((part for part in model_parts if str(layer) in part.layers), None)
        self.block: nn.Module | None = holder.layers[str(layer)] if holder is not None else None
        self.projection: nn.Module | None = getattr(holder, "let_projection", None)
        self.layer = layer
        self._output: torch.Tensor | None = None

    def _keep(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._output = self.projection(output) if self.projection is not None else output

    @contextmanager
    def capturing(self) -> Iterator["BlockCapture"]:
        """Hook block k for the duration of one student forward. A forward that raises leaves nothing behind: a
        kept state would otherwise outlive its step (memory) and could be popped by the next one."""
        self._output = None
        if self.block is None:
            raise RuntimeError(f"student block {self.layer} is not on this rank's pipeline stages")
        handle = self.block.register_forward_hook(self._keep)
        try:
            yield self
        except BaseException:
            self._output = None
            raise
        finally:
            handle.remove()

    def pop(self) -> torch.Tensor:
        """The captured state of the last forward (released here, so it never outlives its step)."""
        output, self._output = self._output, None
        if output is None:
            raise RuntimeError(f"student block {self.layer} did not run in the forward that was captured")
        return output


class SequenceShard:
    """This rank's positions of a full [B, S, ...] tensor: all of them without TP; under TP (sequence parallel) the
    contiguous chunk torchtitan's Shard(1) gives rank r, cut with `torch.chunk`, as DTensor cuts it."""

    def __init__(self, parallel_dims: ParallelDims | None):
        mesh = parallel_dims.get_optional_mesh("tp") if parallel_dims is not None else None
        self.rank, self.degree = (mesh.get_local_rank(), mesh.size()) if mesh is not None else (0, 1)

    def __call__(self, full: torch.Tensor) -> torch.Tensor:
        return full if self.degree == 1 else full.chunk(self.degree, dim=1)[self.rank]
