"""The logit-distillation term (signal = "logits": SALT and RKD): KL between teacher and student next-token
distributions at a temperature T, scaled by T^2.

`distillation_sums` is the math (testable without a config); `DistillationTerm` is the teacher term of
signal = "logits" as the trainer's step uses it (terms/__init__.py), built once from the config like
torchtitan's loss; `check_logits_signal` its keys before start.

Memory: cross-entropy already holds one float32 copy of the [tokens, vocab] logits. A plain autograd KL would save
several more (log-softmax of both sides, the probabilities) until backward. Here a custom autograd Function walks
the tokens in chunks, and for each chunk runs a small forward + backward of its own (torch.autograd.grad), writing
the chunk's gradient into ONE buffer of the student logits' shape and dtype (bf16 under mixed precision, float32 on
CPU). Backward then only scales that buffer. So the term adds: the teacher logits (bf16 on GPU), the gradient
buffer, and one chunk's float32 working set - never a second full float32 autograd graph - and recomputes nothing.
The scale backward applies (lambda / N) is multiplied in float32, chunk by chunk: rounded to bf16 first, it would
bias every gradient of a step by the same factor (up to +-0.4%).
"""

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from ..config import JobConfig, LETConfigError
from ..teacher import TeacherModel, TeacherSource
from ..tokens import TokenAlignment
from . import TeacherTerm

Direction = Literal["forward", "reverse"]


def token_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, direction: Direction
) -> torch.Tensor:
    """Per-token T^2 * KL at temperature T, in float32; forward = KL(teacher || student) (Hinton's KD, mass-covering),
    reverse = KL(student || teacher) (mode-seeking)."""
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if direction == "forward":
        kl = (teacher.exp() * (teacher - student)).sum(-1)
    else:
        kl = (student.exp() * (student - teacher)).sum(-1)
    return temperature**2 * kl


class _ChunkedKL(torch.autograd.Function):
    """Sum of token_kl over valid tokens with the gradient computed chunk by chunk in forward (see module doc)."""

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, valid, temperature, direction, vocab_limit, chunk_tokens):
        # [tokens, vocab] views: slicing columns of a flattened view copies nothing
        student_flat = student_logits.flatten(0, -2)
        teacher_flat = teacher_logits.flatten(0, -2)
        valid_flat = valid.flatten()
        grad = torch.zeros_like(student_flat) if ctx.needs_input_grad[0] else None
        total = torch.zeros((), device=student_logits.device, dtype=torch.float32)
        agree = torch.zeros((), device=student_logits.device, dtype=torch.float32)
        for start in range(0, student_flat.shape[0], chunk_tokens):
            rows, columns = slice(start, start + chunk_tokens), slice(0, vocab_limit)
            student = student_flat[rows, columns].detach().requires_grad_(grad is not None)
            teacher, mask = teacher_flat[rows, columns], valid_flat[rows]
            with torch.enable_grad():
                chunk_sum = (token_kl(student, teacher, temperature, direction) * mask).sum()
            if grad is not None:
                (grad[rows, columns],) = torch.autograd.grad(chunk_sum, student)
            total += chunk_sum.detach()
            agree += ((student.detach().argmax(-1) == teacher.argmax(-1)) & mask).sum()
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(agree)
        ctx.shape, ctx.chunk_tokens, ctx.used = student_logits.shape, chunk_tokens, False
        return total, agree

    @staticmethod
    def backward(ctx, grad_total, _grad_agree):
        # once-differentiable: the gradient is precomputed, so a double backward (create_graph=True, which runs this
        # with grad mode on) would silently treat it as a constant; a second backward through a retained graph
        # would scale the buffer twice
        if torch.is_grad_enabled():
            raise RuntimeError("the distillation term is once-differentiable: create_graph=True is not supported")
        if ctx.used:
            raise RuntimeError("the distillation term's backward runs once per forward (its buffer is scaled in place)")
        ctx.used = True
        (grad,) = ctx.saved_tensors
        # in place, a chunk at a time in float32: no second full-size copy, and the scale is not rounded to bf16
        for rows in torch.split(grad, ctx.chunk_tokens):
            rows.copy_(rows.float() * grad_total)
        return grad.view(ctx.shape), None, None, None, None, None, None


def distillation_sums(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    valid: torch.Tensor,
    temperature: float = 1.0,
    direction: Direction = "forward",
    vocab_limit: int | None = None,
    chunk_tokens: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(SUM over valid positions of T^2 * KL, COUNT of valid positions whose student top-1 equals the teacher's).

    Sums, not means: the trainer divides both by the global number of valid tokens exactly like torchtitan's
    cross-entropy (correct under data parallelism and gradient accumulation). `vocab_limit`: only the first
    vocab_limit logits take part - embedding rows beyond the tokenizer (Pythia: 50,304 rows for 50,277 tokens) are
    never a label, so the teacher's mass there is noise the student should not copy; slicing is masking with -inf
    in both distributions.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}")
    limit = student_logits.shape[-1] if vocab_limit is None else min(vocab_limit, student_logits.shape[-1])
    return _ChunkedKL.apply(student_logits, teacher_logits, valid, temperature, direction, limit, chunk_tokens)


def check_distillation_vocab(student_vocab: int, teacher_vocab: int, tokenizer_ids: int) -> None:
    """signal = "logits" compares distributions row by row: the student's output rows must be the teacher's."""
    if student_vocab != teacher_vocab:
        raise LETConfigError(
            f"let.signal='logits': the student has {student_vocab} output rows but the teacher at let.teacher_path "
            f"has {teacher_vocab}; logit distillation needs the same vocabulary (use signal = 'hidden')"
        )
    if tokenizer_ids > teacher_vocab:
        raise LETConfigError(
            f"let.signal='logits': the tokenizer emits ids up to {tokenizer_ids - 1} beyond the teacher's "
            f"{teacher_vocab} rows"
        )


class DistillationTerm(TeacherTerm):
    """signal = "logits" (SALT, RKD): the KL between the teacher's and the student's next-token distributions, over
    the tokenizer's ids (embedding rows beyond them are never a label)."""

    name = "distillation_loss"
    log_formats = {"distillation_loss": "8.5f", "top1_agreement": "6.4f"}
    token_split = ("loss",)
    """Its sums cover this rank's batch share; TP ranks (loss parallel off) each hold the whole sequence's logits."""

    def __init__(self, job_config: JobConfig, tokenizer_ids: int, model_parts: list[nn.Module] | None = None):
        let = job_config.let
        self.student_side = getattr(model_parts[-1], "output", None) if model_parts else None
        """What the term reads of the student: its output head's logits (None on a pipeline stage without it)."""
        self.temperature, self.direction, self.combine_mode = let.kd_temperature, let.kd_direction, let.kd_combine
        self.vocab_limit, self.chunk_tokens = tokenizer_ids, let.kd_chunk_tokens

    def describe(self, job_config: JobConfig) -> str:
        return (f"signal=logits, {self.direction} KL at T={self.temperature} (vocabulary cut at {self.vocab_limit} "
                f"ids), {self.combine_mode}")

    def teach(self, teacher: TeacherModel, hidden: torch.Tensor) -> torch.Tensor:
        """The teacher's logits in its own dtype (bf16 on GPU), never part of a graph."""
        return teacher.logits(hidden)

    def lm_logits(self, teacher: TeacherModel, signal: torch.Tensor) -> torch.Tensor:
        return signal

    def watching(self) -> AbstractContextManager[None]:
        return nullcontext()

    def sums(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[KD SUM, top-1 agreement COUNT] off the student's logits (eager: the per-chunk autograd.grad is a graph
        break for torch.compile)."""
        term, agreements = distillation_sums(
            pred, target, valid, self.temperature, self.direction, self.vocab_limit, self.chunk_tokens
        )
        return torch.stack([term, agreements])

    def weights(self, weight: float) -> tuple[float, float]:
        """add: CE + lambda * KD (LET's form); mix: (1 - lambda) * CE + lambda * KD (SALT's)."""
        return (1.0 - weight if self.combine_mode == "mix" else 1.0), weight

    def metrics(self, values: list[float]) -> dict[str, float]:
        return {"distillation_loss": values[0], "top1_agreement": values[1]}


def check_logits_signal(job_config: JobConfig, alignment: TokenAlignment) -> None:
    """signal = "logits" compares next-token distributions position by position, off the teacher's LM head."""
    let = job_config.let
    if not let.kd_temperature > 0:
        raise LETConfigError(f"let.kd_temperature={let.kd_temperature}: must be > 0 (1.0 = the plain softmax)")
    if let.kd_chunk_tokens < 1:
        raise LETConfigError(f"let.kd_chunk_tokens={let.kd_chunk_tokens}: must be >= 1")
    if let.kd_combine == "mix" and let.lambda_0 > 1:
        raise LETConfigError(
            f"let.lambda_0={let.lambda_0}: with kd_combine='mix' the CE weight is 1 - lambda, so lambda_0 must be <= 1"
        )
    if let.teacher_layer != -1:
        raise LETConfigError(
            f"let.teacher_layer={let.teacher_layer}: signal='logits' reads the teacher's LM head, which follows its "
            "final layer; use teacher_layer = -1 (or signal = 'hidden')"
        )
    if not alignment.one_to_one:
        raise LETConfigError(
            f"let.token_alignment={alignment.name!r}: signal='logits' compares distributions over the same "
            "token ids, which needs one vocabulary; use token_alignment = 'same' (or signal = 'hidden', which aligns "
            "across tokenizers)"
        )
    parallelism = job_config.parallelism
    if parallelism.tensor_parallel_degree > 1 and not parallelism.disable_loss_parallel:
        raise LETConfigError(
            f"parallelism.tensor_parallel_degree={parallelism.tensor_parallel_degree}: signal='logits' needs the "
            "student's whole-vocabulary logits on each rank, which loss parallel shards; add "
            "--parallelism.disable_loss_parallel"
        )
    if let.projection != "interpolate":
        raise LETConfigError(
            f"let.projection={let.projection!r}: a learned projection serves signal='hidden' only (with 'logits' it "
            "would never be trained); use 'interpolate'"
        )


class Distillation:
    """The option signal = "logits"."""

    def check_config(self, job_config: JobConfig, alignment: TokenAlignment) -> None:
        check_logits_signal(job_config, alignment)

    def build(self, job_config: JobConfig, model_parts: list[nn.Module], tokenizer: BaseTokenizer, vocab_size: int,
              teacher: TeacherSource, parallel_dims: ParallelDims) -> DistillationTerm:
        tokenizer_ids = max(tokenizer.get_vocab().values()) + 1
        check_distillation_vocab(vocab_size, teacher.text["vocab_size"], tokenizer_ids)
        return DistillationTerm(job_config, tokenizer_ids, model_parts)
