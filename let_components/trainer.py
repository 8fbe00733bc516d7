"""LETTrainer: torchtitan's Trainer plus the teacher term for the steps the teacher teaches.

Like torchtitan's Flux trainer, it subclasses Trainer and overrides the step only. What varies between runs is
chosen once at start-up, as torchtitan builds its loss: the teacher term (term.py: LET's alignment of block k, or
logit distillation for SALT/RKD), how teacher positions map to student positions (token_map.py) and when the teacher
leaves (stop.py). The step reads one path: teacher -> student forward -> CE -> term -> combine -> guard -> backward.
Once the teacher has left, the step is torchtitan's own.
"""

import gc
import time
from collections.abc import Iterator
from typing import Any

import torch
from torchtitan.distributed import utils as dist_utils
from torchtitan.protocols.train_spec import get_train_spec
from torchtitan.tools import utils
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from . import platform
from .aligned_data import check_byte_tokenizers
from .config import (
    JobConfig,
    LETConfigError,
    check_let_config,
    exclude_projection_from_quantization,
    latest_checkpoint_step,
)
from .guard import NonFiniteGuard
from .preemption import PreemptionFlag, save_for_requeue
from .record import record_run
from .stop import build_stop_rule, check_stop_rule
from .student import STUDENT_SPECS
from .teacher import (
    TeacherModel,
    build_teacher,
    check_teacher,
    release_cuda_graphs,
    teacher_compiled,
    teacher_forward,
    uses_cuda_graphs,
)
from .teacher_lm import TeacherLM
from .term import build_teacher_term
from .token_map import Batch, SameTokens, TokenMap, build_token_map
from .tokenizer import check_tokenizer, teacher_text_bytes


class LETTrainer(Trainer):
    teacher: TeacherModel | None = None
    weight: float = 0.0
    """The teacher term's weight lambda at the step in flight (0: the teacher does not teach)."""
    token_map: TokenMap = SameTokens()
    """How teacher positions map to student positions (a baseline's batches carry no teacher keys)."""

    def __init__(self, job_config: JobConfig):
        self.let = job_config.let
        if self.let.enable:
            # every cheap check runs before torchtitan initialises distributed or builds anything
            self.resume_step = check_before_start(job_config)
            exclude_projection_from_quantization(job_config)
        super().__init__(job_config)
        self.preemption = PreemptionFlag()
        if not self.let.enable:
            return
        self.stop_rule = build_stop_rule(job_config, self.resume_step, self.tokenizer)
        self._prepare_teacher(self.stop_rule.teacher_needed(self.resume_step))
        self.term = build_teacher_term(job_config, self.model_parts[0], self.tokenizer, self.model_args.vocab_size)
        self.token_map = build_token_map(job_config, self.model_parts[0], self.model_args)
        self.guard = NonFiniteGuard(self.device, self.let.teacher_path)
        self.optimizers.register_step_pre_hook(self._check_finite)
        self._teacher_cuda_graphs = uses_cuda_graphs(job_config)
        self._teacher_left = False
        record_run(job_config, self._teacher_checked, resuming=self.resume_step > 0)
        logger.info(f"[LET] enabled: teacher {self.let.teacher_path} (token_alignment={self.let.token_alignment}): "
                    f"{self.term.describe(job_config)}; {self.stop_rule.describe()}")

    # ---- the training step -------------------------------------------------------------------------------

    def train_step(self, data_iterator: Iterator[Batch]) -> None:
        if not self.let.enable:
            return super().train_step(data_iterator)
        self.weight = self.stop_rule.weight(self.step)
        self._keep_teacher(self.weight > 0)
        if self.weight == 0:
            super().train_step(data_iterator)
        else:
            microbatches = [next(data_iterator) for _ in range(self.gradient_accumulation_steps)]
            self.token_map.begin_step(microbatches, self.parallel_dims, self.device)
            self._term_sums: torch.Tensor | float = 0.0
            self.guard.start_step()
            super().train_step(iter(microbatches))
            self._log_stop_rule(self.stop_rule.end_step(self.step, self.parallel_dims))
        if self.metrics_processor.should_log(self.step):
            self._log_term()

    def forward_backward_step(
        self, *, input_dict: dict[str, torch.Tensor], labels: torch.Tensor, global_valid_tokens: torch.Tensor
    ) -> torch.Tensor:
        teacher_batch = self.token_map.split(input_dict)
        if self.weight == 0:
            return super().forward_backward_step(
                input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens
            )
        inputs, labels, extra_inputs, extra_kwargs = self.post_dataloading_process(input_dict, labels)
        model, term, token_map = self.model_parts[0], self.term, self.token_map
        with self.train_context():
            with torch.no_grad():
                tokens, masks = token_map.teacher_inputs(inputs, teacher_batch, extra_kwargs.get("attention_masks"))
                hidden = self._teacher_forward(tokens, masks)
                target = term.teach(self.teacher, hidden)
                teacher_lm = TeacherLM(lambda rows, target=target: term.lm_logits(self.teacher, target[rows]),
                                       token_map.teacher_labels(labels, teacher_batch), self.teacher.vocab_size)
                if self._teacher_sanity_pending:  # once, on the first batch it teaches
                    self._teacher_sanity_pending = False
                    sanity = teacher_lm.sanity_check(self._teacher_bytes, self.let.teacher_path)
                    self.guard.record(teacher_lm_loss=sanity)  # non-finite: stops the run before step 1 updates
                target = token_map.to_student(target, teacher_batch)
            with self.maybe_enable_amp:
                with term.watching():
                    pred = model(inputs, **extra_inputs, **extra_kwargs)
                # every term is a token SUM over a global count, as torchtitan scales its CE
                ce = self.loss_fn(pred, labels) / global_valid_tokens
                sums = term.sums(pred, target, token_map.valid(labels, teacher_batch))
                sums = sums / token_map.normaliser(global_valid_tokens)
                loss = term.combine(ce, sums[0], self.weight)
                self.stop_rule.observe(self.step, pred, labels, teacher_lm)
            self.guard.record(teacher_output=hidden, ce_loss=ce, **{term.name: sums[0]})
            del pred, hidden, target, teacher_lm
            loss.backward()
        self._term_sums += sums.detach()
        return ce.detach()

    def _check_finite(self, *_) -> None:
        """Optimizer step pre-hook: a non-finite teaching step ends the run before any weight moves (guard.py)."""
        if self.weight > 0:
            self.guard.check(self.step, self.weight)

    def should_continue_training(self) -> bool:
        """After SIGTERM on any rank: checkpoint the finished step (if checkpointing is on) and stop cleanly."""
        if self.preemption.agreed():
            save_for_requeue(self.checkpointer, self.step)
        elif super().should_continue_training():
            return True
        self.preemption.finish()
        return False

    # ---- teacher lifetime --------------------------------------------------------------------------------

    def _prepare_teacher(self, needed: bool) -> None:
        """The tokenizer check and byte table of a run that will teach; skipped once the teacher has left (its
        folder may be gone by then)."""
        check_tokenizer(self.tokenizer, self.job_config, self.model_args.vocab_size, needed)
        self._teacher_bytes = teacher_text_bytes(self.job_config) if needed else None
        self._teacher_checked = needed

    def _keep_teacher(self, needed: bool) -> None:
        """Load the teacher at the first step it teaches; once it has left, release it, its memory and its data."""
        if needed and self.teacher is None:
            start = time.perf_counter()
            self.teacher = build_teacher(self.job_config, self.device, getattr(self.model_args, "attn_type", "sdpa"))
            self._teacher_forward = teacher_forward(self.teacher, self.job_config)
            self._teacher_sanity_pending = self.let.teacher_layer == -1
            graphs = " (CUDA graphs)" if self._teacher_cuda_graphs else ""
            logger.info(
                f"[LET] teacher loaded at step {self.step}: {sum(p.numel() for p in self.teacher.parameters()):,} "
                f"parameters, {next(self.teacher.parameters()).dtype}, "
                f"compiled={teacher_compiled(self.job_config)}{graphs}, {time.perf_counter() - start:.1f}s"
            )
        elif not needed and not self._teacher_left:
            self._teacher_left = True
            self.token_map.stop_data(self.dataloader)
            if self.teacher is None:  # resumed after it left
                return
            reserved_before = self._reserved_gib()
            self.teacher = self._teacher_forward = None
            gc.collect()
            if self._teacher_cuda_graphs:
                release_cuda_graphs()
            if not platform.on_cpu():
                utils.device_module.empty_cache()
            memory = "" if platform.on_cpu() else f" ({reserved_before:.2f} -> {self._reserved_gib():.2f} GiB reserved)"
            logger.info(f"[LET] teaching finished after step {self.step - 1}: teacher released{memory}")

    @staticmethod
    def _reserved_gib() -> float:
        return 0.0 if platform.on_cpu() else utils.device_module.memory_reserved() / 2**30

    # ---- records and logging -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torchtitan's train state, plus a stop rule's decision (checkpointed with the step it belongs to)."""
        state = super().state_dict()
        if self.let.enable and (rule_state := self.stop_rule.state_dict()):
            state["let_stop_rule"] = rule_state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "let_stop_rule" in state_dict:
            self.stop_rule.load_state_dict(state_dict["let_stop_rule"])
        if self.let.enable and not self._teacher_checked and self.stop_rule.teacher_needed(self.step):
            # the record said the teacher had left; the checkpoint says it still teaches: check it before it does
            attn_type = getattr(self.model_args, "attn_type", "sdpa")
            check_teacher(self.job_config, teacher_needed=True, resuming=True, attn_type=attn_type)
            self._prepare_teacher(True)

    def _log_stop_rule(self, metrics: dict[str, float]) -> None:
        """A rule that measured this step (stop_when = "caught_up", on its check steps): both losses per byte."""
        if not metrics:
            return
        self.metrics_processor.logger.log({f"let/{name}": value for name, value in metrics.items()}, self.step)
        shown = "  ".join(f"{name}: {value:.4f}" for name, value in metrics.items())
        logger.info(f"[LET] step: {self.step:2}  caught-up check  {shown}")

    def _log_term(self) -> None:
        """lambda and the term's metrics (summed over data-parallel ranks: each rank's share is already divided by
        the global count) beside torchtitan's metrics, and the [LET] line while the teacher teaches."""
        if self.weight == 0:
            self.metrics_processor.logger.log({"let/lambda": 0.0}, self.step)
            return
        if self.parallel_dims.dp_cp_enabled:
            mesh = self.parallel_dims.get_optional_mesh("loss")
            values = [dist_utils.dist_sum(value, mesh) for value in self._term_sums]
        else:
            values = self._term_sums.tolist()
        metrics, mapping = self.term.metrics(values), self.token_map.metrics()
        self.metrics_processor.logger.log(
            {"let/lambda": self.weight, **{f"let/{name}": value for name, value in (metrics | mapping).items()}},
            self.step,
        )
        shown = [f"{name}: {metrics[name]:{spec}}" for name, spec in self.term.log_formats.items()]
        shown += [f"{name}: {value:.0f}" for name, value in mapping.items()]
        logger.info(f"[LET] step: {self.step:2}  lambda: {self.weight:.5f}  {'  '.join(shown)}")


def check_before_start(job_config: JobConfig) -> int:
    """Config and teacher-folder checks that need no process group; returns the step the run resumes after."""
    let = job_config.let
    if job_config.model.name not in STUDENT_SPECS:
        raise LETConfigError(
            f"model.name={job_config.model.name!r}: LET trains a student spec, one of {', '.join(STUDENT_SPECS)}"
        )
    flavors = get_train_spec(job_config.model.name).model_args
    if job_config.model.flavor not in flavors:
        raise LETConfigError(f"model.flavor={job_config.model.flavor!r}: valid are {', '.join(flavors)}")
    student_args = flavors[job_config.model.flavor]
    check_let_config(job_config, student_args.n_layers)
    resume_step = latest_checkpoint_step(job_config)
    teacher_needed = build_stop_rule(job_config, resume_step).teacher_needed(resume_step)
    attn_type = getattr(student_args, "attn_type", "sdpa")
    check_teacher(job_config, teacher_needed=teacher_needed, resuming=resume_step > 0, attn_type=attn_type)
    if let.token_alignment == "bytes":
        check_byte_tokenizers(job_config)
    check_stop_rule(job_config)
    return resume_step
