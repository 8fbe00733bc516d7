"""A LET student from any torchtitan TrainSpec whose model has `layers`: the family's own model, parallelize
function, optimizer builder and HF adapter, plus three narrow additions.

- args: the student vocabulary is the teacher's embedding rows (or, aligned by bytes, its own tokenizer's ids), the
  projection width the teacher's hidden size;
- model: an optional `let_projection` Linear beside the blocks (the forward stays torchtitan's own; block k is
  read by a forward hook, see let_components/terms/capture.py), and the `[student] init` choice in init_weights
  (init.py), for baseline and LET runs alike;
- HF adapter: LET-only parameters never reach an export.

A family module (llama.py, qwen3.py, deepseek_v3.py) combines these mixins with torchtitan's classes and
lists its flavors; `student_train_spec` does the rest.
"""

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributed.tensor.parallel import SequenceParallel, parallelize_module
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.models.utils import trunc_normal_
from torchtitan.protocols.train_spec import BaseModelArgs, TrainSpec

from .. import platform
from ..config import LETConfigError, Student, valid_choices
from ..dry_run import data_rank
from ..teacher import teacher_source
from ..tokens import build_dataloader, token_alignment
from ..tokens.tokenizers import student_tokenizer
from ..validate import ResumableValidator
from .init import hf_init_
from .pipeline import pipeline_student


@dataclass
class StudentArgsMixin:
    """Put first in the bases of a torchtitan args dataclass: `class A(StudentArgsMixin, Qwen3ModelArgs)`."""

    projection_dim: int = 0
    """Width of the learned LET projection (teacher hidden size); 0 = no projection module."""

    init_scheme: str = "torchtitan"
    """`[student] init`: torchtitan (the family's own init_weights) or hf (init.py)."""

    hf_init_supported: ClassVar[bool] = True
    """Whether init.py's `hf` rules cover this family's parameters (false: `hf` is refused before building)."""

    def update_from_config(self, job_config: JobConfig, **kwargs) -> None:
        """Student vocabulary = the teacher's embedding rows (token_alignment = "bytes": its own tokenizer's ids);
        projection width = the teacher's hidden size; the init scheme from `[student] init` (whether LET is enabled
        or not)."""
        super().update_from_config(job_config, **kwargs)
        student = getattr(job_config, "student", None)
        self.init_scheme = student.init if student is not None else "torchtitan"
        if self.init_scheme not in valid_choices(Student, "init"):
            raise LETConfigError(
                f"student.init={self.init_scheme!r}: valid are {', '.join(valid_choices(Student, 'init'))}"
            )
        if self.init_scheme == "hf" and not self.hf_init_supported:
            raise LETConfigError(
                f"student.init='hf': not supported for model.name={job_config.model.name!r} (its MoE and MLA "
                "weights have no hf rule here); use 'torchtitan'"
            )
        teacher = teacher_source(job_config)
        if teacher is None:
            return
        # the teacher's vocabulary, or (token_alignment = "bytes") the student's own tokenizer's
        self.vocab_size = token_alignment(job_config).student_vocab_size(job_config, teacher)
        let = job_config.let
        if let.enable and let.projection == "linear":
            self.projection_dim = teacher.output_width(let.teacher_layer)


class ProjectionMixin:
    """Put first in the bases of a torchtitan model: adds `let_projection` and the `[student] init` choice.

    The projection lives in the model for the whole run so checkpoints keep one structure; as a top-level module
    it sits in FSDP2's root group, whose parameters are unsharded for the whole root forward - which is where the
    capture hook calls it. It gets no gradient once lambda is 0, and the HF export drops it.
    """

    def __init__(self, model_args: Any):
        super().__init__(model_args)
        width = model_args.projection_dim
        self.let_projection = nn.Linear(model_args.dim, width, bias=False) if width else None

    def init_weights(self, buffer_device: torch.device | None = None) -> None:
        super().init_weights(buffer_device=buffer_device)
        if self.model_args.init_scheme == "hf":
            hf_init_(self, self.model_args.n_layers)
        if self.let_projection is not None:
            trunc_normal_(self.let_projection.weight, mean=0.0, std=self.model_args.dim**-0.5)


class DropProjectionAdapterMixin:
    """Put first in the bases of a torchtitan state-dict adapter: LET-only parameters never reach an HF export."""

    def to_hf(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        return super().to_hf({k: v for k, v in state_dict.items() if not k.startswith("let_projection.")})


ParallelizeFn = Callable[[nn.Module, ParallelDims, JobConfig], nn.Module]


def student_parallelize(parallelize_fn: ParallelizeFn) -> ParallelizeFn:
    """The family's parallelize function, with two additions: under TP the learned projection is a sequence-parallel
    module, and on CPU FSDP2 gradients are reduced with plain SUM (gloo has no PREMUL_SUM; torchtitan already divides
    by global valid tokens)."""

    def parallelize(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig) -> nn.Module:
        if parallel_dims.tp_enabled and getattr(model, "let_projection", None) is not None:
            # it maps block k's output, which TP hands on as this rank's sequence shard: replicated weights on the TP
            # mesh (FSDP then shards them over the data-parallel one, as torchtitan's norms), its input marked
            # Shard(1), so its weight's gradient from each rank's shard is summed over TP in backward
            parallelize_module(model.let_projection, parallel_dims.get_mesh("tp"),
                               SequenceParallel(use_local_output=True))
        model = parallelize_fn(model, parallel_dims, job_config)
        if parallel_dims.fsdp_enabled and platform.on_cpu():
            platform.force_sum_reduction(model)
        return model

    return parallelize


def build_student_tokenizer(job_config: JobConfig) -> BaseTokenizer:
    """TrainSpec hook: the student's tokenizer, the one the pre-start checks read (tokens.tokenizers)."""
    return student_tokenizer(job_config, teacher_source(job_config))


def build_student_dataloader(dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                             infinite: bool = True) -> ParallelAwareDataloader:
    """TrainSpec hook: torchtitan's text dataloader, or the token alignment's while LET is on."""
    return build_dataloader(dp_world_size, data_rank(dp_rank), tokenizer, job_config, infinite,
                            teacher_source(job_config))


def student_train_spec(
    base: TrainSpec, model_cls: type, flavors: Mapping[str, BaseModelArgs], state_dict_adapter: type
) -> TrainSpec:
    """`base` (torchtitan's spec of the family) with the LET student's model, flavors, adapter and tokenizer.

    Kept from `base`: optimizer builder (deepseek_v3's updates MoE expert biases), LR schedule, loss, pipelining
    function (pipeline.py: block k's projection joins block k's stage); every student gets torchtitan's validator,
    resumable (let_components/validate.py), and torchtitan's text dataloader, with the teacher's tokenization of the
    same text beside it when the token alignment needs one (let_components/tokens/).
    """
    return dataclasses.replace(
        base,
        model_cls=model_cls,
        # copies: torchtitan mutates the args of the flavor it trains (update_from_config)
        model_args={name: copy.deepcopy(args) for name, args in flavors.items()},
        parallelize_fn=student_parallelize(base.parallelize_fn),
        pipelining_fn=pipeline_student(base.pipelining_fn),
        build_tokenizer_fn=build_student_tokenizer,
        build_dataloader_fn=build_student_dataloader,
        build_validator_fn=ResumableValidator,
        state_dict_adapter=state_dict_adapter,
    )
