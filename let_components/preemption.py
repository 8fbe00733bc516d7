"""Preemption: on SIGTERM (what Slurm and torchrun send before SIGKILL) the run saves a checkpoint and exits cleanly.

The handler only sets a flag. Every rank must stop after the same step, so the flags are combined with a
non-blocking gloo all-reduce of one CPU integer, started at the top of each step and read at the top of the next:
it runs while the step computes, so it costs no device sync and no wait on the step's critical path. The price is
one step of delay: a SIGTERM that arrives during step s is in the reduce started before step s + 1 and read before
step s + 2, so the run stops after step s + 1 and then checkpoints (at worst the rest of step s plus one whole step
after the signal; a 7B step takes about 13 s against Slurm's default 30 s grace). One process needs no collective.
A SIGKILL instead is covered by the periodic checkpoints: a save cut short leaves a step folder without DCP's
`.metadata`, which torchtitan (and config.latest_checkpoint_step) skip.
"""

import signal

import torch
import torch.distributed as dist
from torchtitan.components.checkpoint import AsyncMode, CheckpointManager
from torchtitan.config import JobConfig
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from .dry_run import fake_world
from .pipeline_loss import divide_loss_before_backward


class PreemptionFlag:
    """Set by SIGTERM on any rank; `agreed` tells every rank alike, one step after it was set."""

    def __init__(self) -> None:
        self.received = False
        # one process needs no collective: a single rank, or a dry run's process standing for every rank (the fake
        # backend has no gloo side group to make)
        one_process = not dist.is_initialized() or dist.get_world_size() == 1 or fake_world()
        self._group = None if one_process else dist.new_group(backend="gloo")
        self._pending: tuple[dist.Work, torch.Tensor] | None = None
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.received = True

    def agreed(self) -> bool:
        """Whether any rank had the signal when the previous call started its reduce; starts the next reduce."""
        if self._group is None:
            return self.received
        agreed = False
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            agreed = bool(flag.item())
        flag = torch.tensor([int(self.received)])
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True), flag)
        return agreed

    def finish(self) -> None:
        """Wait for the reduce in flight (every rank started it), so none is left pending at shutdown."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


def save_for_requeue(checkpointer: CheckpointManager, step: int) -> None:
    """A complete, synchronous checkpoint of `step` (unless it has one), whatever checkpoint.async_mode says, kept
    like torchtitan's own saves: none with checkpoint.load_only, older ones purged to checkpoint.keep_latest_k.

    torchtitan 0.2.2's `save` saves only on interval steps (and model-only at the last step), so this calls the
    manager's own pieces: wait for an async save in flight, a blocking DCP save of the full training state, the purge.
    """
    if not checkpointer.enable or checkpointer.load_only or step == 0:
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
    checkpointer._purge_stale_checkpoints()
    logger.info(f"SIGTERM: saved step {step} to {checkpoint_id}; exiting for requeue")


class PreemptibleTrainer(Trainer):
    """torchtitan's Trainer that checkpoints and stops cleanly on SIGTERM, and whose pipeline-parallel step backwards
    the CE divided by the global valid tokens, as its step without PP does: a baseline's trainer (let.enable =
    false), and the base of LETTrainer."""

    def __init__(self, job_config: JobConfig):
        super().__init__(job_config)
        self.preemption = PreemptionFlag()
        self.pipeline_loss = divide_loss_before_backward(self.pp_schedule) if self.parallel_dims.pp_enabled else None

    def forward_backward_step(
        self, *, input_dict: dict[str, torch.Tensor], labels: torch.Tensor, global_valid_tokens: torch.Tensor
    ) -> torch.Tensor:
        """torchtitan's step; under PP each microbatch's CE is divided by the global valid tokens before the
        schedule backwards it (pipeline_loss.py: torchtitan 0.2.2 backwards the sum)."""
        step = super().forward_backward_step
        if self.pipeline_loss is None:
            return step(input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens)
        with self.pipeline_loss.divided_by(global_valid_tokens):
            loss = step(input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens)
        # torchtitan divides the schedule's microbatch losses by global_valid_tokens once more for the log; they
        # left the schedule divided already. Ranks without the last stage return torchtitan's -1 (nothing to log).
        return loss * global_valid_tokens if self.pp_has_last_stage else loss

    def should_continue_training(self) -> bool:
        """After SIGTERM on any rank: checkpoint the finished step (if checkpointing is on) and stop cleanly."""
        if self.preemption.agreed():
            save_for_requeue(self.checkpointer, self.step)
        elif super().should_continue_training():
            return True
        self.preemption.finish()
        return False
