"""Preemption: on SIGTERM (what Slurm and torchrun send before SIGKILL) the run saves a checkpoint and exits cleanly.

The handler only sets a flag; the training loop asks at the top of each step whether ANY rank got the signal (a
gloo all-reduce of one CPU integer: no device sync), so every rank stops after the same step and saves it together.
A SIGKILL instead is covered by the periodic checkpoints: a save cut short leaves a step folder without DCP's
`.metadata`, which torchtitan (and config.latest_checkpoint_step) skip.
"""

import signal

import torch
import torch.distributed as dist
from torchtitan.components.checkpoint import AsyncMode, CheckpointManager
from torchtitan.tools.logging import logger


class PreemptionFlag:
    """Set by SIGTERM on any rank; `agreed` tells every rank alike."""

    def __init__(self) -> None:
        self.received = False
        self._group = dist.new_group(backend="gloo") if dist.is_initialized() and dist.get_world_size() > 1 else None
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.received = True

    def agreed(self) -> bool:
        flag = torch.tensor([int(self.received)])
        if self._group is not None:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return bool(flag.item())


def save_for_requeue(checkpointer: CheckpointManager, step: int) -> None:
    """A complete, synchronous checkpoint of `step` (unless it already has one), whatever checkpoint.async_mode says.

    torchtitan 0.2.2's `save` saves only on interval steps (and model-only at the last step), so this calls the
    manager's own pieces: wait for an async save in flight, then a blocking DCP save of the full training state.
    """
    if not checkpointer.enable or step == 0:
        return
    checkpointer._async_wait()
    checkpoint_id = checkpointer._create_checkpoint_id(step)
    # decided from the step number alone, so every rank takes the same branch of this collective save
    if checkpointer._should_save(step):
        logger.info(f"SIGTERM: step {step} was checkpointed on schedule in {checkpoint_id}; exiting for requeue")
        return
    checkpointer.dcp_save(
        checkpointer._flattened_model_states_sd(), checkpoint_id=checkpoint_id, async_mode=AsyncMode.DISABLED
    )
    logger.info(f"SIGTERM: saved step {step} to {checkpoint_id}; exiting for requeue")
