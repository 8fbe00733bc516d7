"""LETTrainer: torchtitan's Trainer plus the teacher term for the first stop_step steps.

Like torchtitan's Flux trainer, it subclasses Trainer and overrides the step only. The step reads top to
bottom: teacher hidden state (while lambda > 0) -> student forward -> CE -> teacher term -> backward, where the
teacher term is LET's alignment of block k (signal = "hidden") or the KL to the teacher's next-token distribution
(signal = "logits": SALT, RKD). After stop_step the teacher is deleted and the step is torchtitan's own.
"""

import dataclasses
import gc
import json
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
from torchtitan.distributed import utils as dist_utils
from torchtitan.protocols.train_spec import get_train_spec
from torchtitan.tools import utils
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from . import platform
from .capture import BlockCapture
from .config import (
    JobConfig,
    LETConfigError,
    check_let_config,
    exclude_projection_from_float8,
    latest_checkpoint_step,
)
from .distill import build_distillation_loss, check_distillation_vocab, combine_losses
from .guard import NonFiniteGuard
from .loss import build_alignment_loss
from .preemption import PreemptionFlag, save_for_requeue
from .schedule import alignment_weight
from .student import STUDENT_SPECS
from .teacher import (
    TeacherModel,
    build_teacher,
    check_teacher,
    keep_teacher_config,
    keep_teacher_fingerprint,
    release_cuda_graphs,
    teacher_compiled,
    teacher_config,
    uses_cuda_graphs,
)
from .tokenizer import check_tokenizer, keep_teacher_tokenizer

RUN_RECORD = "let_run.json"
"""The run's `[let]` values, training.steps and student.init, in its dump folder: tools read stop_step here, not off
the logs."""


class LETTrainer(Trainer):
    teacher: TeacherModel | None

    def __init__(self, job_config: JobConfig):
        self.let = job_config.let
        if self.let.enable:
            # every cheap check runs before torchtitan initialises distributed or builds anything
            self.resume_step = check_before_start(job_config)
            exclude_projection_from_float8(job_config)
        super().__init__(job_config)
        self.teacher = None
        self._teacher_sanity_pending = False
        self._teacher_cuda_graphs = uses_cuda_graphs(job_config)
        self.alignment_weight = 0.0
        self.preemption = PreemptionFlag()
        if not self.let.enable:
            return
        teacher_needed = self.resume_step < self.let.stop_step
        check_tokenizer(self.tokenizer, job_config, self.model_args.vocab_size, teacher_needed)
        if self.let.signal == "hidden":
            self.alignment_loss_fn = build_alignment_loss(job_config)
            self.capture = BlockCapture(self.model_parts[0], self.let.student_layer)
        else:
            tokenizer_ids = max(self.tokenizer.get_vocab().values()) + 1
            teacher_vocab = teacher_config(self.let.teacher_path, job_config.job.dump_folder)["vocab_size"]
            check_distillation_vocab(self.model_args.vocab_size, teacher_vocab, tokenizer_ids)
            self.distillation_loss_fn = build_distillation_loss(job_config, tokenizer_ids)
        self._alignment_sum = torch.zeros((), device=self.device)
        self._distillation_sums = torch.zeros(2, device=self.device)  # KD term, top-1 agreements (fraction)
        self.guard = NonFiniteGuard(self.device, self.let.teacher_path)
        self.optimizers.register_step_pre_hook(self._check_finite)
        self._record_run(teacher_needed)
        if self.let.signal == "hidden":
            logger.info(
                f"[LET] enabled: student block {self.let.student_layer} <- teacher layer {self.let.teacher_layer} "
                f"of {self.let.teacher_path}, lambda_0={self.let.lambda_0} ({self.let.schedule}) for steps "
                f"1..{self.let.stop_step}, projection={self.let.projection}"
            )
        else:
            logger.info(
                f"[LET] enabled: signal=logits, {self.let.kd_direction} KL at T={self.let.kd_temperature} to the "
                f"teacher {self.let.teacher_path} (vocabulary cut at {tokenizer_ids} ids), {self.let.kd_combine} "
                f"with lambda_0={self.let.lambda_0} ({self.let.schedule}) for steps 1..{self.let.stop_step}"
            )

    # ---- the training step -------------------------------------------------------------------------------

    def train_step(self, data_iterator: Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]) -> None:
        if not self.let.enable:
            return super().train_step(data_iterator)
        let = self.let
        self.alignment_weight = alignment_weight(self.step, let.lambda_0, let.stop_step, let.schedule)
        if self.alignment_weight > 0 and self.teacher is None:
            self.teacher = self._load_teacher()
        elif self.alignment_weight == 0 and self.teacher is not None:
            self._release_teacher()
        if self.alignment_weight > 0:
            self._alignment_sum.zero_()
            self._distillation_sums.zero_()
            self.guard.start_step()
        super().train_step(data_iterator)
        if self.metrics_processor.should_log(self.step):
            self._log_alignment()

    def forward_backward_step(
        self, *, input_dict: dict[str, torch.Tensor], labels: torch.Tensor, global_valid_tokens: torch.Tensor
    ) -> torch.Tensor:
        if self.alignment_weight == 0:
            return super().forward_backward_step(
                input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens
            )
        inputs, labels, extra_inputs, extra_kwargs = self.post_dataloading_process(input_dict, labels)
        with self.train_context():
            with torch.no_grad():
                if self._teacher_cuda_graphs:
                    # each micro-batch's teacher output is consumed before the next replay overwrites it
                    torch.compiler.cudagraph_mark_step_begin()
                teacher_hidden = self.teacher(inputs, extra_kwargs.get("attention_masks"))
                # signal = "logits": the teacher's logits in its own dtype (bf16 on GPU), never part of a graph
                teacher_logits = self.teacher.logits(teacher_hidden) if self.let.signal == "logits" else None
                if self._teacher_sanity_pending:
                    self._log_teacher_loss(teacher_hidden, labels, teacher_logits)
            with self.maybe_enable_amp:
                with self.capture.capturing() if teacher_logits is None else nullcontext():
                    pred = self.model_parts[0](inputs, **extra_inputs, **extra_kwargs)
                # every term is a token SUM over global valid tokens, as torchtitan scales its CE
                ce = self.loss_fn(pred, labels) / global_valid_tokens
                if teacher_logits is None:
                    student_hidden = self.capture.pop()
                    alignment = self.alignment_loss_fn(student_hidden, teacher_hidden, labels) / global_valid_tokens
                    loss = ce + self.alignment_weight * alignment
                else:
                    distillation, agreements = self.distillation_loss_fn(pred, teacher_logits, labels)
                    distillation = distillation / global_valid_tokens
                    loss = combine_losses(ce, distillation, self.alignment_weight, self.let.kd_combine)
            if teacher_logits is None:
                self.guard.record(teacher_hidden=teacher_hidden, ce_loss=ce, alignment_loss=alignment)
            else:
                self.guard.record(teacher_hidden=teacher_hidden, ce_loss=ce, distillation_loss=distillation)
            del pred, teacher_hidden, teacher_logits
            loss.backward()
        if self.let.signal == "hidden":
            self._alignment_sum += alignment.detach()
        else:
            self._distillation_sums += torch.stack([distillation.detach(), agreements / global_valid_tokens])
        return ce.detach()

    def _check_finite(self, *_) -> None:
        """Optimizer step pre-hook: a non-finite aligned step ends the run before any weight moves (guard.py)."""
        if self.alignment_weight > 0:
            parameters = [p for model in self.model_parts for p in model.parameters()]
            self.guard.check(parameters, self.step, self.alignment_weight)

    def should_continue_training(self) -> bool:
        """After SIGTERM on any rank: checkpoint the finished step (if checkpointing is on) and stop cleanly."""
        if self.preemption.agreed():
            save_for_requeue(self.checkpointer, self.step)
            return False
        return super().should_continue_training()

    # ---- teacher lifetime --------------------------------------------------------------------------------

    def _load_teacher(self) -> TeacherModel:
        start = time.perf_counter()
        teacher = build_teacher(self.job_config, self.device, getattr(self.model_args, "attn_type", "sdpa"))
        self._teacher_sanity_pending = self.let.teacher_layer == -1
        graphs = " (CUDA graphs)" if self._teacher_cuda_graphs else ""
        logger.info(
            f"[LET] teacher loaded at step {self.step}: {sum(p.numel() for p in teacher.parameters()):,} "
            f"parameters, {next(teacher.parameters()).dtype}, compiled={teacher_compiled(self.job_config)}{graphs}, "
            f"{time.perf_counter() - start:.1f}s"
        )
        return teacher

    def _log_teacher_loss(
        self, teacher_hidden: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None
    ) -> None:
        """Once: the teacher's own LM loss on the first batch, so a wrong checkpoint or tokenizer shows at once
        (off `teacher_logits` when the step computed them already)."""
        self._teacher_sanity_pending = False
        logits = (self.teacher.logits(teacher_hidden) if teacher_logits is None else teacher_logits).float()
        loss_tensor = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        self.guard.record(teacher_lm_loss=loss_tensor)  # non-finite: an error, on every rank, before step 1 updates
        loss = loss_tensor.item()
        uniform = math.log(logits.shape[-1])
        logger.info(
            f"[LET] teacher sanity check: LM loss {loss:.3f} nats on the first batch (uniform guessing: {uniform:.3f})"
        )
        if math.isfinite(loss) and not loss < uniform:
            logger.warning(
                f"[LET] the teacher at let.teacher_path='{self.let.teacher_path}' predicts the first batch no better "
                "than chance: check the checkpoint and the tokenizer (model.hf_assets_path, if set)"
            )

    def _release_teacher(self) -> None:
        reserved_before = self._reserved_gib()
        self.teacher = None
        gc.collect()
        if self._teacher_cuda_graphs:
            release_cuda_graphs()
        if not platform.on_cpu():
            utils.device_module.empty_cache()
        memory = "" if platform.on_cpu() else f" ({reserved_before:.2f} -> {self._reserved_gib():.2f} GiB reserved)"
        logger.info(f"[LET] alignment finished after step {self.let.stop_step}: teacher released{memory}")

    @staticmethod
    def _reserved_gib() -> float:
        return 0.0 if platform.on_cpu() else utils.device_module.memory_reserved() / 2**30

    # ---- checks and logging ------------------------------------------------------------------------------

    def _record_run(self, teacher_needed: bool) -> None:
        """Keep the teacher's shapes and tokenizer with the job (a resume after stop_step needs no teacher folder),
        its fingerprint (a resume mid-alignment must find the same teacher) and the `[let]` values the run trains
        with (tools read stop_step from there)."""
        if torch.distributed.get_rank() != 0:
            return
        dump_folder = self.job_config.job.dump_folder
        keep_teacher_config(self.let.teacher_path, dump_folder)
        if teacher_needed:
            keep_teacher_fingerprint(self.let.teacher_path, dump_folder)
        keep_teacher_tokenizer(self.let.teacher_path, dump_folder)
        record = {
            **dataclasses.asdict(self.let),
            "training_steps": self.job_config.training.steps,
            "student_init": self.job_config.student.init,
        }
        (Path(dump_folder) / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")

    def _log_alignment(self) -> None:
        """lambda, alignment loss and cosine (averaged over data-parallel ranks) beside torchtitan's metrics."""
        if self.alignment_weight == 0:
            self.metrics_processor.logger.log({"let/lambda": 0.0}, self.step)
            return
        if self.let.signal == "logits":
            return self._log_distillation()
        alignment = self._alignment_sum
        if self.parallel_dims.dp_cp_enabled:
            alignment = dist_utils.dist_sum(alignment, self.parallel_dims.get_optional_mesh("loss"))
        else:
            alignment = alignment.item()
        metrics = {"let/lambda": self.alignment_weight, "let/alignment_loss": alignment, "let/cosine": -alignment}
        self.metrics_processor.logger.log(metrics, self.step)
        logger.info(
            f"[LET] step: {self.step:2}  lambda: {self.alignment_weight:.5f}  "
            f"alignment_loss: {alignment:8.5f}  cosine: {-alignment:7.4f}"
        )

    def _log_distillation(self) -> None:
        """lambda, the distillation term and the top-1 agreement (both summed over data-parallel ranks: each rank's
        share is already divided by the global valid tokens)."""
        if self.parallel_dims.dp_cp_enabled:
            mesh = self.parallel_dims.get_optional_mesh("loss")
            distillation, agreement = (dist_utils.dist_sum(value, mesh) for value in self._distillation_sums)
        else:
            distillation, agreement = self._distillation_sums.tolist()
        metrics = {"let/lambda": self.alignment_weight, "let/distillation_loss": distillation,
                   "let/top1_agreement": agreement}
        self.metrics_processor.logger.log(metrics, self.step)
        logger.info(
            f"[LET] step: {self.step:2}  lambda: {self.alignment_weight:.5f}  "
            f"distillation_loss: {distillation:8.5f}  top1_agreement: {agreement:6.4f}"
        )


def check_before_start(job_config: JobConfig) -> int:
    """Config and teacher-folder checks that need no process group; returns the step the run resumes from."""
    let = job_config.let
    if job_config.model.name not in STUDENT_SPECS:
        raise LETConfigError(
            f"model.name={job_config.model.name!r}: LET trains a student spec, one of {', '.join(STUDENT_SPECS)}"
        )
    flavors = get_train_spec(job_config.model.name).model_args
    if job_config.model.flavor not in flavors:
        raise LETConfigError(f"model.flavor={job_config.model.flavor!r}: valid are {', '.join(flavors)}")
    check_let_config(job_config, flavors[job_config.model.flavor].n_layers)
    resume_step = latest_checkpoint_step(job_config)
    check_teacher(job_config, teacher_needed=resume_step < let.stop_step, resuming=resume_step > 0)
    return resume_step
