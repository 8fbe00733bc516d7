"""let.stop_when = "caught_up": FixedStop, ended early once the student has caught up with the teacher.

From LET's own premise that a late teacher helps while it still knows more than the student: every
`caught_up_every` steps it measures both models' language-modeling loss on the same training text, per byte (so
different tokenizers compare), pools the last `caught_up_window` checks, and once the student's is at or below the
teacher's (+ margin) the weight is 0 from the next step on: a step transition, whatever the schedule. stop_step
stays the schedule's horizon and the hard cap.

The decision is part of the run: `state_dict` goes into torchtitan's checkpoint (the trainer's train state), the
decision into the run record (record.py), which a later start reads when its rule is built (so its pre-start
checks already know whether the teacher is needed). Loading a checkpoint makes the record agree with it, so the
record never holds a decision the run did not make.
"""

from typing import Any

import torch
import torch.distributed as dist
from torch.distributed._functional_collectives import all_reduce
from torch.distributed.tensor import DTensor
from torchtitan.distributed import ParallelDims
from torchtitan.tools.logging import logger

from ..config import LET, JobConfig, LETConfigError
from ..record import RunRecord
from ..teacher.lm import TeacherLM
from ..tokens.per_byte import bits_per_byte, lm_loss_sums, text_byte_lengths
from . import StopInputs
from .fixed import FixedStop

CAUGHT_UP_NEEDS = "let.stop_when='caught_up' (it compares both models' loss per byte of text; or stop_when='step')"
"""What needs the bytes of every token, in the error line of a tokenizer that cannot say them."""


class CaughtUp(FixedStop):
    """FixedStop, ended early once the student has caught up with the teacher per byte of text (module doc)."""

    def __init__(self, let: LET, record: RunRecord, student_bytes: torch.Tensor | None = None,
                 teacher_bytes: torch.Tensor | None = None, decided_step: int | None = None):
        super().__init__(let)
        self.record = record
        self.every, self.window, self.margin = let.caught_up_every, let.caught_up_window, let.caught_up_margin
        self.min_steps, self.sequences = let.caught_up_min_steps, let.caught_up_sequences
        self.student_bytes, self.teacher_bytes = student_bytes, teacher_bytes
        self.decided_step = decided_step
        self.checks: list[list[float]] = []
        """Per check: [student nats, student bytes, teacher nats, teacher bytes], summed over ranks."""
        self._sums: torch.Tensor | None = None

    @property
    def last_step(self) -> int:
        fixed = super().last_step
        return fixed if self.decided_step is None else min(fixed, self.decided_step)

    def observe(self, step: int, pred: torch.Tensor, labels: torch.Tensor, teacher: TeacherLM,
                label_bytes: torch.Tensor | None = None) -> None:
        if step % self.every:
            return
        rows = self.sequences
        with torch.no_grad():
            logits = pred[:rows]
            if isinstance(logits, DTensor):  # loss parallel (TP): the vocabulary sharded over ranks
                logits = logits.full_tensor()
            rows_bytes = label_bytes[:rows] if label_bytes is not None else None
            if self.student_bytes.device != pred.device:  # once: the table stays on the device
                self.student_bytes = self.student_bytes.to(pred.device)
            student = lm_loss_sums(logits, labels[:rows], self.student_bytes, rows_bytes)[:2]
            taught = teacher.text_sums(rows, self.teacher_bytes)[:2]
        sums = torch.cat([student, taught])
        self._sums = sums if self._sums is None else self._sums + sums

    def end_step(self, step: int, parallel_dims: ParallelDims) -> dict[str, float]:
        if self._sums is None:
            return {}
        sums, self._sums = self._sums, None
        if parallel_dims.dp_enabled:  # every rank decides from the same numbers, so on the same step
            sums = all_reduce(sums, "sum", group=parallel_dims.get_mesh("batch"))
        return self.check(step, sums.tolist())

    def check(self, step: int, sums: list[float]) -> dict[str, float]:
        """One check's [student nats, student bytes, teacher nats, teacher bytes] (summed over ranks) into the
        window, and the decision once the pooled student is at or below the pooled teacher (+ margin)."""
        self.checks = (self.checks + [sums])[-self.window:]
        student_bpb, teacher_bpb = self.smoothed()
        if len(self.checks) == self.window and step >= self.min_steps and student_bpb <= teacher_bpb + self.margin:
            self.decide(step, student_bpb, teacher_bpb)
        return {"student_bits_per_byte": student_bpb, "teacher_bits_per_byte": teacher_bpb}

    def decide(self, step: int, student_bpb: float, teacher_bpb: float) -> None:
        self.decided_step = step
        logger.info(
            f"[LET] the student caught up with the teacher at step {step}: {student_bpb:.4f} against "
            f"{teacher_bpb:.4f} bits per byte (margin {self.margin:+g}; pooled over its last {self.window} checks, "
            f"every {self.every} steps): the teacher leaves after this step"
        )
        self._record()

    def _record(self) -> None:
        """let_run.json says what this run decided (rank 0), so a later start's rule and tools read it."""
        if dist.is_initialized() and dist.get_rank() != 0:
            return
        decision = None
        if self.decided_step is not None:
            decision = {"step": self.decided_step}
            if self.checks:  # no check follows a decision: the window is the deciding one
                student_bpb, teacher_bpb = self.smoothed()
                decision |= {"student_bits_per_byte": student_bpb, "teacher_bits_per_byte": teacher_bpb}
        self.record.decide(decision)

    def smoothed(self) -> tuple[float, float]:
        """(student, teacher) bits per byte over the pooled checks: each a ratio of sums, so every byte weighs the
        same whatever check it came from."""
        s_nats, s_bytes, t_nats, t_bytes = (sum(column) for column in zip(*self.checks, strict=True))
        return bits_per_byte(s_nats, s_bytes), bits_per_byte(t_nats, t_bytes)

    def describe(self) -> str:
        return (f"{super().describe()}, or until the student caught up (bits per byte <= the teacher's "
                f"{self.margin:+g}, {self.window} checks every {self.every} steps on {self.sequences} sequences)")

    def state_dict(self) -> dict[str, Any]:
        return {"decided_step": -1 if self.decided_step is None else self.decided_step, "checks": self.checks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The checkpoint's decision replaces the recorded one where they differ: a checkpoint from before a recorded
        decision withdraws it (the replay may decide later, or never), so no later start reads a stale one."""
        decided = int(state_dict["decided_step"])
        self.decided_step = None if decided < 0 else decided
        self.checks = [list(check) for check in state_dict["checks"]]
        recorded_step = (self.record.decision() or {}).get("step")
        if recorded_step != self.decided_step:
            logger.info(f"[LET] let_run.json: the checkpoint's caught-up decision (step {self.decided_step}) replaces "
                        f"the recorded one (step {recorded_step})")
            self._record()


class CaughtUpOption:
    def check_config(self, job_config: JobConfig) -> None:
        """It compares the two LM losses through the teacher's LM head."""
        let = job_config.let
        for key in ("caught_up_every", "caught_up_window", "caught_up_sequences"):
            if getattr(let, key) < 1:
                raise LETConfigError(f"let.{key}={getattr(let, key)}: must be >= 1")
        if let.caught_up_min_steps < 0:
            raise LETConfigError(f"let.caught_up_min_steps={let.caught_up_min_steps}: must be >= 0")
        if let.teacher_layer != -1:
            raise LETConfigError(
                f"let.teacher_layer={let.teacher_layer}: stop_when='caught_up' reads the teacher's LM head, which "
                "follows its final layer; use teacher_layer = -1 (or stop_when = 'step')"
            )
        pp = job_config.parallelism.pipeline_parallel_degree
        if pp > 1:
            raise LETConfigError(
                f"parallelism.pipeline_parallel_degree={pp}: stop_when='caught_up' compares the student's loss (last "
                "stage) with the teacher's (block k's stage) per byte, not measured across stages yet; use "
                "stop_when = 'step' or no pipeline parallelism"
            )

    def build(self, job_config: JobConfig, inputs: StopInputs) -> CaughtUp:
        """The rule, measuring per byte in the student's tokenizer and the teacher's own (both must say the bytes of
        every token, per_byte.token_byte_lengths, whatever the token alignment is: a one-line error otherwise), from
        the decision an earlier start of this run recorded (the checkpoint's, loaded later, is the same or earlier)."""
        student_bytes = text_byte_lengths(inputs.student_tokenizer, inputs.student_key, CAUGHT_UP_NEEDS)
        teacher_bytes = text_byte_lengths(inputs.teacher.tokenizer(), "let.teacher_path", CAUGHT_UP_NEEDS)
        return CaughtUp(job_config.let, inputs.record, torch.from_numpy(student_bytes), torch.from_numpy(teacher_bytes),
                        recorded_step(inputs.record, inputs.resume_step))


def recorded_step(record: RunRecord, resume_step: int) -> int | None:
    """The decision a (re)start begins from: the one this run recorded (a fresh start has none)."""
    decision = record.decision() if resume_step > 0 else None
    return decision["step"] if decision else None
