"""LETTrainer: torchtitan's Trainer plus the teacher term for the steps the teacher teaches.

Like torchtitan's Flux trainer, it subclasses Trainer and overrides the step only. What varies is chosen once at
start-up, as torchtitan builds its loss: the teacher term (terms/), how teacher positions map to student positions
(tokens/), when the teacher leaves (stop/); the teacher itself lives in teacher/lifetime.py. The step reads one path:
teacher -> student forward -> CE -> term -> combine -> guard -> backward; once the teacher has left it is
torchtitan's own. A baseline (let.enable = false) trains with PreemptibleTrainer: `build_trainer` chooses once.
"""

from collections.abc import Iterator
from typing import Any

import torch
from torchtitan.distributed import utils as dist_utils
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from .config import JobConfig
from .guard import NonFiniteGuard
from .preemption import PreemptibleTrainer
from .prestart import check_before_start
from .record import record_run
from .stop import build_stop_rule
from .teacher.lifetime import TeacherLifetime
from .teacher.lm import TeacherLM
from .terms import build_teacher_term
from .tokens import Batch, build_token_map, describe


class LETTrainer(PreemptibleTrainer):
    weight: float = 0.0
    """The teacher term's weight lambda at the step in flight (0: the teacher does not teach)."""

    def __init__(self, job_config: JobConfig):
        # every cheap check runs before torchtitan initialises distributed or builds anything
        resume_step = check_before_start(job_config)
        super().__init__(job_config)
        student = self.model_parts[0]
        self.stop_rule = build_stop_rule(job_config, resume_step, self.tokenizer)
        self.teacher = TeacherLifetime(job_config, self.device, self.model_args, self.tokenizer,
                                       self.stop_rule.teacher_needed(resume_step))
        self.term = build_teacher_term(job_config, student, self.tokenizer, self.model_args.vocab_size)
        self.token_map = build_token_map(job_config, student, self.model_args)
        self.guard = NonFiniteGuard(self.device, job_config.let.teacher_path, self.term.name)
        self.optimizers.register_step_pre_hook(self._check_finite)
        record_run(job_config, resuming=resume_step > 0)
        logger.info(f"[LET] enabled: teacher {job_config.let.teacher_path} ({describe(job_config)}): "
                    f"{self.term.describe(job_config)}; {self.stop_rule.describe()}")

    def train_step(self, data_iterator: Iterator[Batch]) -> None:
        self.weight = self.stop_rule.weight(self.step)
        if self.teacher.keep(self.weight > 0, self.step):
            self.token_map.stop_data(self.dataloader)
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
        model, term, token_map, teacher = self.model_parts[0], self.term, self.token_map, self.teacher
        with self.train_context():
            with torch.no_grad():
                tokens, masks = token_map.teacher_inputs(inputs, teacher_batch, extra_kwargs.get("attention_masks"))
                hidden = teacher.forward(tokens, masks)
                target = term.teach(teacher.model, hidden)
                teacher_lm = TeacherLM(lambda rows, target=target: term.lm_logits(teacher.model, target[rows]),
                                       token_map.teacher_labels(labels, teacher_batch), teacher.model.vocab_size)
                if (sanity := teacher.sanity_check(teacher_lm)) is not None:
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

    def state_dict(self) -> dict[str, Any]:
        """torchtitan's train state, plus a stop rule's decision (checkpointed with the step it belongs to)."""
        state = super().state_dict()
        if rule_state := self.stop_rule.state_dict():
            state["let_stop_rule"] = rule_state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "let_stop_rule" in state_dict:
            self.stop_rule.load_state_dict(state_dict["let_stop_rule"])
        if self.stop_rule.teacher_needed(self.step):
            self.teacher.check_after_load()  # a no-op unless the record said the teacher had left

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


def build_trainer(job_config: JobConfig) -> Trainer:
    """The trainer of a run, chosen once: LETTrainer while [let] is on, PreemptibleTrainer for a baseline."""
    return LETTrainer(job_config) if job_config.let.enable else PreemptibleTrainer(job_config)
