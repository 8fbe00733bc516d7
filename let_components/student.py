"""The LET student: torchtitan's llama3 Transformer that can also hand back the output of block k.

Registered as TrainSpec "let_llama". The blocks are torchtitan's own, so parallelize_llama applies FSDP2,
per-block torch.compile, float8 and activation checkpointing unchanged; only the top-level forward differs.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchtitan.components.loss import build_cross_entropy_loss
from torchtitan.components.lr_scheduler import build_lr_schedulers
from torchtitan.components.optimizer import build_optimizers
from torchtitan.components.validate import build_validator
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.hf_datasets.text_datasets import build_text_dataloader
from torchtitan.models.llama3 import parallelize_llama
from torchtitan.models.llama3.model.args import TransformerModelArgs
from torchtitan.models.llama3.model.model import Transformer
from torchtitan.models.llama3.model.state_dict_adapter import Llama3StateDictAdapter
from torchtitan.models.utils import trunc_normal_
from torchtitan.protocols.train_spec import TrainSpec, register_train_spec

from . import platform
from .teacher import teacher_architecture, teacher_config
from .teacher.llama import NO_ROPE_SCALING
from .tokenizer import build_tokenizer

SPEC_NAME = "let_llama"


@dataclass
class StudentArgs(TransformerModelArgs):
    projection_dim: int = 0
    """Width of the learned LET projection (teacher hidden size); 0 = no projection module."""

    def update_from_config(self, job_config: JobConfig, **kwargs) -> None:
        """Student vocabulary = the teacher's embedding rows; projection width = the teacher's hidden size."""
        super().update_from_config(job_config, **kwargs)
        let = getattr(job_config, "let", None)
        if let is None or not let.teacher_path:
            return
        teacher = teacher_config(let.teacher_path, job_config.job.dump_folder)
        self.vocab_size = teacher["vocab_size"]
        if let.enable and let.projection == "linear":
            self.projection_dim = teacher_architecture(teacher, let.teacher_path).output_width(
                teacher, let.teacher_layer
            )


class Student(Transformer):
    """llama3 Transformer whose forward can also return the (projected) output of one block."""

    def __init__(self, model_args: StudentArgs):
        super().__init__(model_args)
        # Lives in the model for the whole run so checkpoints keep one structure; it gets no gradient once
        # lambda is 0 and the HF export drops it.
        self.let_projection = (
            nn.Linear(model_args.dim, model_args.projection_dim, bias=False) if model_args.projection_dim else None
        )

    def init_weights(self, buffer_device: torch.device | None = None) -> None:
        super().init_weights(buffer_device=buffer_device)
        if self.let_projection is not None:
            trunc_normal_(self.let_projection.weight, mean=0.0, std=self.model_args.dim**-0.5)

    def forward(
        self,
        tokens: torch.Tensor,
        attention_masks: Any = None,
        positions: torch.Tensor | None = None,
        *,
        capture_layer: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; with `capture_layer=k` also the output of block k (through the projection, if any)."""
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        captured = None
        for layer_id, layer in self.layers.items():
            h = layer(h, self.freqs_cis, attention_masks=attention_masks, positions=positions)
            if capture_layer is not None and int(layer_id) == capture_layer:
                captured = self.let_projection(h) if self.let_projection is not None else h
        h = self.norm(h) if self.norm is not None else h
        output = self.output(h) if self.output is not None else h
        return output if capture_layer is None else (output, captured)


class StudentStateDictAdapter(Llama3StateDictAdapter):
    """torchtitan's llama3 HF mapping; LET-only parameters never reach an HF export."""

    def to_hf(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        return super().to_hf({k: v for k, v in state_dict.items() if not k.startswith("let_projection.")})


def parallelize_student(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig) -> nn.Module:
    """parallelize_llama unchanged; on CPU, FSDP2 gradients are reduced with plain SUM (gloo has no PREMUL_SUM)."""
    model = parallelize_llama(model, parallel_dims, job_config)
    if parallel_dims.fsdp_enabled and platform.on_cpu():
        platform.force_sum_reduction(model)
    return model


def _args(**kwargs: Any) -> StudentArgs:
    """Plain RoPE: torchtitan's llama3 default would apply Llama-3.1 long-context scaling."""
    return StudentArgs(rope_theta=10000, rope_scaling_args=NO_ROPE_SCALING, **kwargs)


student_args = {
    # the project's tiny teacher (assets/teacher_debug, 2.1M parameters) and the debug student (7.2M)
    "debug_teacher": _args(dim=128, n_layers=4, n_heads=4, vocab_size=4096),
    "debugmodel": _args(dim=256, n_layers=6, n_heads=8, vocab_size=4096),
    # the paper's LLaMA-architecture students; vocab_size is replaced by the teacher's
    "1.4B": _args(dim=2048, n_layers=24, n_heads=16, multiple_of=256, ffn_dim_multiplier=5632 / 5461),
    "3B": _args(dim=2560, n_layers=32, n_heads=20, multiple_of=256),
    "7B": _args(dim=4096, n_layers=32, n_heads=32, multiple_of=256),
}


def ffn_hidden_dim(args: TransformerModelArgs) -> int:
    """SwiGLU width exactly as torchtitan's FeedForward computes it (HF's intermediate_size)."""
    hidden = int(2 * 4 * args.dim / 3)
    if args.ffn_dim_multiplier is not None:
        hidden = int(args.ffn_dim_multiplier * hidden)
    return args.multiple_of * ((hidden + args.multiple_of - 1) // args.multiple_of)


def get_train_spec() -> TrainSpec:
    return TrainSpec(
        model_cls=Student,
        # copies: torchtitan mutates the args of the flavor it trains (update_from_config)
        model_args={name: dataclasses.replace(args) for name, args in student_args.items()},
        parallelize_fn=parallelize_student,
        pipelining_fn=None,
        build_optimizers_fn=build_optimizers,
        build_lr_schedulers_fn=build_lr_schedulers,
        build_dataloader_fn=build_text_dataloader,
        build_tokenizer_fn=build_tokenizer,
        build_loss_fn=build_cross_entropy_loss,
        build_validator_fn=build_validator,
        state_dict_adapter=StudentStateDictAdapter,
    )


def register() -> None:
    """Register the student TrainSpec once (torchtitan raises on a duplicate name)."""
    from torchtitan.protocols.train_spec import _extra_train_specs

    if SPEC_NAME not in _extra_train_specs:
        register_train_spec(SPEC_NAME, get_train_spec())
