"""The paired benchmark's trainer: one LET process whose steps run the plan's arms (arms.py), block by block.

    TRAIN_FILE=recipes.reports.benchmark.paired_trainer LET_BENCH_PLAN=plan.json \\
        ./run_train.sh --job.config_file LET.toml ...
    (started by `python -m recipes.reports.benchmark --paired|--breakdown`, which writes the plan and reads the blocks)

The switch between arms lives here, in a benchmark-only subclass; LETTrainer's step is not touched. The teacher
stays loaded for the whole run (the stop rule's lambda is its step-1 value on every teaching step), and the device
is synchronised at both ends of every block: inside a block the steps overlap as in training, across a block
boundary nothing of one arm runs in the other's time. Each block's first step runs unclocked (BlockClock): it pays
for switching arms, a cost the order does not balance.
"""

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from let_components.trainer import LETTrainer

from .arms import ARMS, PLAN_ENV, Arm, Plan

# ---- stand-ins: the pieces of LET's step, doing nothing -----------------------------------------------------


class NoGuard:
    """The guard left out: no marks, no host sync."""

    def start_step(self) -> None:
        pass

    def record(self, **terms: torch.Tensor) -> None:
        pass

    def check(self, step: int, weight: float) -> None:
        pass


class NoTerm:
    """The teacher term left out: no hook, no term, loss = CE. What the teacher teaches (its head, for logits) is
    still computed: that is the teacher forward's part. Everything not stood in for is the term's own."""

    def __init__(self, term: Any):
        self.term = term

    def __getattr__(self, name: str) -> Any:
        return getattr(self.term, name)

    def watching(self):
        return nullcontext()

    def sums(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return pred.new_zeros(1)

    def combine(self, ce: torch.Tensor, term: torch.Tensor, weight: float) -> torch.Tensor:
        return ce

    def metrics(self, values: list[float]) -> dict[str, float]:
        return dict.fromkeys(self.term.log_formats, 0.0)


class NoMapping:
    """The token map reduced to what the step cannot do without (the teacher's keys leave the student's batch, the
    teacher reads its own ids; the map's own): no global count, no gather (the target is broadcast from its first
    position), the CE's mask and count."""

    def __init__(self, token_map: Any):
        self.token_map = token_map

    def __getattr__(self, name: str) -> Any:
        return getattr(self.token_map, name)

    def begin_step(self, microbatches, parallel_dims, device) -> None:
        pass

    def to_student(self, target: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        index = teacher_batch.get("teacher_index")
        return target if index is None else target[:, :1].expand(-1, index.shape[1], *target.shape[2:])

    def valid(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return labels != IGNORE_INDEX

    def normaliser(self, global_valid_tokens: torch.Tensor) -> torch.Tensor:
        return global_valid_tokens


class KeptStopRule:
    """The run's stop rule with the teacher kept: lambda is its step-1 value on every teaching step (the cost does
    not depend on it); `checking` switches its per-step observe/end_step on or off."""

    def __init__(self, rule: Any):
        self.rule, self.checking = rule, True

    def weight(self, step: int) -> float:
        return self.rule.weight(1)

    def teaches(self, step: int) -> bool:
        return True

    def needed_after(self, step: int) -> bool:
        return True

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: Any,
                label_bytes: torch.Tensor | None = None) -> None:
        if self.checking:
            self.rule.observe(step, pred, labels, teacher, label_bytes)

    def end_step(self, step: int, parallel_dims) -> dict[str, float]:
        return self.rule.end_step(step, parallel_dims) if self.checking else {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rule, name)


# ---- the clock --------------------------------------------------------------------------------------------------


def synchronize() -> None:
    """Wait for the device's queued work (a no-op on CPU, where every op has finished when it returns)."""
    if torch.accelerator.is_available():
        torch.accelerator.synchronize()


class BlockClock:
    """Wall time of each block's clocked steps between two device synchronisations, and the CPU time this process
    spent in them (on a shared CPU the wall time also measures the neighbours; one thread's CPU time measures the
    work). The block's first `plan.lead_in_steps` run unclocked: entering an arm costs something once (caches, the
    allocator, another compiled graph) and the palindromic order does not balance it (paired_stats.py). Their time is
    recorded apart ("lead_in_seconds", "lead_in_cpu_seconds") to show that cost."""

    def __init__(self, plan: Plan):
        self.plan, self.records = plan, []
        self._lead_in = self._clocked = (0.0, 0.0)

    def start(self, step: int) -> None:
        position = (step - 1) % self.plan.block_steps
        if position in (0, self.plan.lead_in_steps):
            synchronize()  # the lead-in's end is the clocked steps' start: one synchronisation serves both
            now = time.perf_counter(), time.process_time()
            if position == 0:
                self._lead_in = now
            if position == self.plan.lead_in_steps:
                self._clocked = now

    def stop(self, step: int) -> None:
        if step % self.plan.block_steps == 0:
            synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            block, lead_in = self.plan.block_of(step), self.plan.lead_in_steps
            self.records.append({
                "block": block, "arm": self.plan.blocks[block], "steps": self.plan.block_steps - lead_in,
                "seconds": wall - self._clocked[0], "cpu_seconds": cpu - self._clocked[1],
                "lead_in_steps": lead_in, "lead_in_seconds": self._clocked[0] - self._lead_in[0],
                "lead_in_cpu_seconds": self._clocked[1] - self._lead_in[1],
            })


# ---- the trainer ---------------------------------------------------------------------------------------------


class PairedTrainer(LETTrainer):
    """LETTrainer whose steps run the plan's arms; writes the blocks' times at the last step."""

    def __init__(self, job_config):
        if not job_config.let.enable:
            raise ValueError("the paired benchmark runs a LET config ([let] enable = true)")
        super().__init__(job_config)
        self.plan = Plan.load(os.environ[PLAN_ENV])
        if job_config.training.steps != self.plan.steps:
            raise ValueError(f"training.steps={job_config.training.steps}: the plan has {self.plan.steps} steps")
        self.clock = BlockClock(self.plan)
        self.stop_rule = KeptStopRule(self.stop_rule)
        self.pieces = {"term": (self.term, NoTerm(self.term)), "token_map": (self.token_map, NoMapping(self.token_map)),
                       "guard": (self.guard, NoGuard())}
        self.arm = ARMS[self.plan.arms[0]]
        self._real_teacher_forward = None
        self._kept_hidden: torch.Tensor | None = None
        logger.info(f"[benchmark] arms {', '.join(self.plan.arms)}: {len(self.plan.blocks)} blocks of "
                    f"{self.plan.block_steps} steps ({self.plan.lead_in_steps} lead-in step(s) unclocked), device "
                    "synchronised at every block's ends and after its lead-in")

    def train_step(self, data_iterator) -> None:
        self.arm = ARMS[self.plan.arms[self.plan.blocks[self.plan.block_of(self.step)]]]
        self.clock.start(self.step)
        if self.arm.teaching:
            self.teacher.load(self.step)  # at the first teaching step; never released here
            self._wire(self.arm)
            super().train_step(data_iterator)
        else:
            self.teaching, self.weight = False, 0.0
            Trainer.train_step(self, data_iterator)  # torchtitan's step, as LETTrainer runs it once lambda is 0
        self.clock.stop(self.step)
        if self.step == self.plan.steps and int(os.environ.get("RANK", "0")) == 0:
            self._write_blocks()

    def _write_blocks(self) -> None:
        """The block records, with what this process knows best: its device, versions, tokens per step."""
        from .measure import run_metadata

        training = self.job_config.training
        tokens = training.local_batch_size * training.seq_len * self.gradient_accumulation_steps
        record = {"meta": run_metadata(""), "tokens_per_step": tokens, "blocks": self.clock.records}
        Path(self.plan.out).write_text(json.dumps(record, indent=1))

    def _wire(self, arm: Arm) -> None:
        """Put the arm's pieces (or their stand-ins) where LETTrainer's step reads them."""
        self.term = self.pieces["term"][0 if arm.term else 1]
        self.token_map = self.pieces["token_map"][0 if arm.mapping else 1]
        self.guard = self.pieces["guard"][0 if arm.guard else 1]
        self.stop_rule.checking = arm.stop_rule
        if self._real_teacher_forward is None:
            self._real_teacher_forward = self.teacher.forward
        self.teacher.forward = self._real_teacher_forward if arm.teacher else self._kept_teacher_forward

    def _kept_teacher_forward(self, tokens: torch.Tensor, masks: Any) -> torch.Tensor:
        """The teacher's first output again (cloned: a CUDA-graph replay overwrites its outputs)."""
        if self._kept_hidden is None:
            self._kept_hidden = self._real_teacher_forward(tokens, masks).clone()
        return self._kept_hidden

    def forward_backward_step(
        self, *, input_dict: dict[str, torch.Tensor], labels: torch.Tensor, global_valid_tokens: torch.Tensor
    ) -> torch.Tensor:
        if self.arm.extra_forward:
            batch = dict(input_dict)
            self.token_map.split(batch)
            inputs, _, extra_inputs, extra_kwargs = self.post_dataloading_process(batch, labels)
            with torch.no_grad(), self.maybe_enable_amp:
                self.model_parts[0](inputs, **extra_inputs, **extra_kwargs)
        return super().forward_backward_step(
            input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens
        )


if __name__ == "__main__":
    from recipes.train import main

    main(PairedTrainer)
