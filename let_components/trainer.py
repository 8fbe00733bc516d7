"""LETTrainer: torchtitan's Trainer plus the teacher term for the steps the teacher teaches.

Like torchtitan's Flux trainer, it subclasses Trainer and overrides the step only. What varies is chosen once at
start-up (prestart.py), as torchtitan builds its loss: the teacher term (terms/), how teacher positions map to student
positions (tokens/), when the teacher leaves (stop/: the rule also answers whether the teacher is still needed); the
teacher itself lives in teacher/lifetime.py. The step reads one path:
teacher -> student forward -> CE -> term -> combine -> guard -> backward; once the teacher has left it is
torchtitan's own. A baseline (let.enable = false) trains with PreemptibleTrainer: `build_trainer` chooses once.
"""

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import torch
from torch.distributed._functional_collectives import all_reduce
from torch.distributed.tensor import DTensor
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from .config import JobConfig
from .guard import NonFiniteGuard
from .preemption import PreemptibleTrainer
from .prestart import check_before_start, check_teacher_side
from .teacher.lifetime import TeacherLifetime
from .teacher.lm import TeacherLM
from .terms.pipeline import StageFeed, joined
from .tokens import Batch


class LETTrainer(PreemptibleTrainer):
    weight: float = 0.0
    """The teacher term's weight lambda at the step in flight."""
    teaching: bool = False
    """Whether the teacher teaches the step in flight (the stop rule's answer)."""

    def __init__(self, job_config: JobConfig):
        # every cheap check runs, and every piece of the run is decided, before torchtitan initialises anything
        self.startup = startup = check_before_start(job_config)
        super().__init__(job_config)
        self.stop_rule = startup.stop_rule
        self.teacher = TeacherLifetime(job_config, startup.teacher, startup.teacher_options, self.device)
        startup.teacher.keep(needed=self.stop_rule.needed_after(startup.resume_step))
        self.term = startup.term.build(job_config, self.model_parts, self.tokenizer, self.model_args.vocab_size,
                                       startup.teacher, self.parallel_dims)
        # under pipeline parallelism only the ranks whose stages hold the term's student side run the teacher
        self.teacher_here = self.term.student_side is not None
        if not self.teacher_here:
            logger.info(f"[LET] pipeline rank {self.parallel_dims.get_mesh('pp').get_local_rank()}: its stages "
                        "hold no part of the teacher term's student side: the teacher is never loaded here (0 GiB)")
        self.pipeline_stages = self._pipeline_stages() if self.parallel_dims.pp_enabled else []
        self.term_meshes = [mesh for mesh in map(self.parallel_dims.get_optional_mesh, self.term.token_split) if mesh]
        """The meshes over which the term's sums are summed for its metrics (each holds other positions)."""
        self.token_map = startup.alignment.build_map(job_config, self.model_parts[0], self.model_args, startup.teacher)
        self.guard = NonFiniteGuard(self.device, startup.teacher.path, self.term.name)
        self.optimizers.register_step_pre_hook(self._check_finite)
        startup.record.start(job_config, resuming=startup.resume_step > 0)
        logger.info(f"[LET] enabled: teacher {startup.teacher.path} ({startup.alignment.describe(job_config)}): "
                    f"{self.term.describe(job_config)}; {self.stop_rule.describe()}")

    def train_step(self, data_iterator: Iterator[Batch]) -> None:
        self.teaching, self.weight = self.stop_rule.teaches(self.step), self.stop_rule.weight(self.step)
        if not self.teaching:
            if self.teacher.release(self.step):  # the step it leaves: its side of the data stops too
                self.token_map.stop_data(self.dataloader)
            super().train_step(data_iterator)
        else:
            if self.teacher_here:  # under PP, the ranks whose stages hold the term's student side
                self.teacher.load(self.step)
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
        if not self.teaching:
            return super().forward_backward_step(
                input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens
            )
        if self.parallel_dims.pp_enabled:
            return self._pipelined_step(input_dict, labels, teacher_batch, global_valid_tokens)
        inputs, labels, extra_inputs, extra_kwargs = self.post_dataloading_process(input_dict, labels)
        model, term, token_map = self.model_parts[0], self.term, self.token_map
        with self.train_context():
            hidden, target, teacher_lm = self._teach(inputs, labels, teacher_batch, extra_kwargs)
            with self.maybe_enable_amp:
                with term.watching():
                    pred = model(inputs, **extra_inputs, **extra_kwargs)
                ce = self.loss_fn(pred, labels) / global_valid_tokens
                if isinstance(ce, DTensor):  # loss parallel (TP): the CE is a DTensor, the term's sums are local
                    ce = ce.full_tensor()
                sums = term.sums(pred, target, token_map.valid(labels, teacher_batch))
                # the term's SUM over the GLOBAL count of the positions it counts (for `same` the CE's own count):
                # a fraction of the global mean on every rank and micro-batch, like the CE above, so summed
                # gradients are the global mean's and lambda weighs the term against the CE at any batch layout
                sums = sums / token_map.normaliser(global_valid_tokens)
                loss = term.combine(ce, sums[0], self.weight)
                label_bytes = token_map.student_label_bytes(teacher_batch)
                self.stop_rule.observe(self.step, pred, labels, teacher_lm, label_bytes)
            # marks only, on the device (no sync): the optimizer pre-hook reads them over all ranks before any
            # weight moves, so a non-finite step is refused even though its backward has run
            self.guard.record(teacher_output=hidden, ce_loss=ce, **{term.name: sums[0]})
            del pred, hidden, target, teacher_lm
            loss.backward()
        self._term_sums += sums.detach()
        return ce.detach()

    def _teach(self, inputs: torch.Tensor, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor],
               extra_kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, TeacherLM]:
        """The teacher's side of a micro-batch: its state, its target at the student's positions, and its own
        next-token prediction (computed only if asked); the first batch it teaches also runs its sanity check."""
        token_map, term, teacher = self.token_map, self.term, self.teacher
        # no graph for the teacher's side: the teacher is frozen and its target is a constant of the loss, so
        # nothing is saved for backward (no_grad, not inference_mode: the target must be usable in autograd)
        with torch.no_grad():
            tokens, masks = token_map.teacher_inputs(inputs, teacher_batch, extra_kwargs.get("attention_masks"))
            hidden = teacher.forward(tokens, masks)
            target = term.teach(teacher.model, hidden)
            teacher_lm = self._teacher_lm(target, token_map.teacher_labels(labels, teacher_batch),
                                          token_map.teacher_label_bytes(teacher_batch))
            if (sanity := teacher.sanity_check(teacher_lm)) is not None:
                self.guard.record(teacher_lm_loss=sanity)  # non-finite: stops the run before step 1 updates
            return hidden, token_map.to_student(target, teacher_batch), teacher_lm

    def _pipelined_step(self, input_dict: dict[str, torch.Tensor], labels: torch.Tensor,
                        teacher_batch: dict[str, torch.Tensor], global_valid_tokens: torch.Tensor) -> torch.Tensor:
        """The teaching step under pipeline parallelism: torchtitan's schedule runs the student; on the ranks whose
        stages hold the term's student side the teacher reads the whole local batch and the term joins that stage's
        backward microbatch by microbatch (terms/pipeline.py); the last stage's CE keeps the weight the term's
        combine gives it. The logged loss is the CE, as without PP."""
        term, step = self.term, super().forward_backward_step
        ce_factor, term_factor = term.weights(self.weight)
        feed = None
        if self.teacher_here:
            inputs, student_labels, _, extra_kwargs = self.post_dataloading_process(dict(input_dict), labels)
            with self.train_context():
                hidden, target, _ = self._teach(inputs, student_labels, teacher_batch, extra_kwargs)
            self.guard.record(teacher_output=hidden)
            valid = self.token_map.valid(student_labels, teacher_batch)
            feed = StageFeed(target, valid, self.pp_schedule._n_microbatches,
                             self.token_map.normaliser(global_valid_tokens), term_factor)
        with self.pipeline_loss.weighed(ce_factor):
            with joined(term, feed, self.pipeline_stages) if feed is not None else nullcontext():
                loss = step(input_dict=input_dict, labels=labels, global_valid_tokens=global_valid_tokens)
        if self.pp_has_last_stage:
            self.guard.record(ce_loss=loss)
        if feed is not None:
            sums = feed.finish()
            self.guard.record(**{term.name: sums[0]})
            self._term_sums += sums
        return loss

    def _pipeline_stages(self) -> list:
        """This rank's stages of torchtitan's schedule (one, or several for a looped schedule)."""
        schedule = self.pp_schedule
        return list(getattr(schedule, "_stages", None) or [schedule._stage])

    def _teacher_lm(self, target: torch.Tensor, teacher_labels: torch.Tensor,
                    label_bytes: torch.Tensor | None) -> TeacherLM:
        """The teacher's next-token prediction of this micro-batch, computed only if asked (the sanity check, a
        caught-up check): its logits from its target, a few sequences at a time."""
        teacher, term = self.teacher.model, self.term
        return TeacherLM(lambda rows: term.lm_logits(teacher, target[rows]), teacher_labels, teacher.vocab_size,
                         label_bytes)

    def _check_finite(self, *_) -> None:
        """Optimizer step pre-hook: a non-finite teaching step ends the run before any weight moves (guard.py)."""
        if self.teaching:
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
        if self.stop_rule.needed_after(self.step) and not self.startup.teacher_checked:
            # the checkpoint teaches where the record said the teacher had left: check its folder now
            check_teacher_side(self.job_config, self.startup, needed=True)

    def _log_stop_rule(self, metrics: dict[str, float]) -> None:
        """A rule that measured this step (stop_when = "caught_up", on its check steps): both losses per byte."""
        if not metrics:
            return
        self.metrics_processor.logger.log({f"let/{name}": value for name, value in metrics.items()}, self.step)
        shown = "  ".join(f"{name}: {value:.4f}" for name, value in metrics.items())
        logger.info(f"[LET] step: {self.step:2}  caught-up check  {shown}")

    def _log_term(self) -> None:
        """lambda and the term's metrics (summed over the ranks that hold different positions of them: each rank's
        share is already divided by the global count) beside torchtitan's metrics, and the [LET] line while the
        teacher teaches."""
        if not self.teaching:
            self.metrics_processor.logger.log({"let/lambda": 0.0}, self.step)
            return
        sums = self._term_sums
        if self.parallel_dims.pp_enabled:  # the sums live on the ranks whose stages hold the term's student side
            sums = self._from_teacher_stages(sums)
        for mesh in self.term_meshes:
            sums = all_reduce(sums, "sum", group=mesh)  # each rank's share of the positions, summed
        values = sums.tolist()
        metrics, mapping = self.term.metrics(values), self.token_map.metrics()
        self.metrics_processor.logger.log(
            {"let/lambda": self.weight, **{f"let/{name}": value for name, value in (metrics | mapping).items()}},
            self.step,
        )
        shown = [f"{name}: {metrics[name]:{spec}}" for name, spec in self.term.log_formats.items()]
        shown += [f"{name}: {value:.0f}" for name, value in mapping.items()]
        logger.info(f"[LET] step: {self.step:2}  lambda: {self.weight:.5f}  {'  '.join(shown)}")

    def _from_teacher_stages(self, sums: torch.Tensor | float) -> torch.Tensor:
        """The term's sums of this step on every pipeline rank: each data-parallel group's stage that holds the
        term's student side sends them to the group's other stages (log steps only: a few floats)."""
        gathered: list[list[float] | None] = [None] * self.parallel_dims.pp
        mine = sums.tolist() if isinstance(sums, torch.Tensor) else None
        torch.distributed.all_gather_object(gathered, mine, group=self.parallel_dims.get_mesh("pp").get_group())
        return torch.tensor(next(values for values in gathered if values is not None), device=self.device)


def build_trainer(job_config: JobConfig) -> Trainer:
    """The trainer of a run, chosen once: LETTrainer while [let] is on, PreemptibleTrainer for a baseline."""
    return LETTrainer(job_config) if job_config.let.enable else PreemptibleTrainer(job_config)
