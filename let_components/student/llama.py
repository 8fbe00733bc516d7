"""The `let_llama` student: torchtitan's llama3 Transformer (blocks, forward, parallelize_llama) at the paper's
LLaMA-architecture shapes, with plain RoPE."""

from dataclasses import dataclass

from torchtitan.models.llama3 import get_train_spec as llama3_train_spec
from torchtitan.models.llama3.model.args import TransformerModelArgs
from torchtitan.models.llama3.model.model import Transformer
from torchtitan.models.llama3.model.state_dict_adapter import Llama3StateDictAdapter
from torchtitan.protocols.train_spec import TrainSpec

from ..teacher.llama import NO_ROPE_SCALING
from .spec import DropProjectionAdapterMixin, ProjectionMixin, StudentArgsMixin, student_train_spec

SPEC_NAME = "let_llama"


@dataclass
class StudentArgs(StudentArgsMixin, TransformerModelArgs):
    pass


class Student(ProjectionMixin, Transformer):
    """torchtitan's llama3 Transformer plus the optional LET projection."""


class StudentStateDictAdapter(DropProjectionAdapterMixin, Llama3StateDictAdapter):
    """torchtitan's llama3 HF mapping without LET-only parameters."""


def _args(**kwargs) -> StudentArgs:
    """Plain RoPE: torchtitan's llama3 default would apply Llama-3.1 long-context scaling."""
    return StudentArgs(rope_theta=10000, rope_scaling_args=NO_ROPE_SCALING, **kwargs)


student_args = {
    # the project's tiny teacher (assets/teacher_debug, 2.1M parameters) and the debug student (7.2M)
    "debug_teacher": _args(dim=128, n_layers=4, n_heads=4, vocab_size=4096),
    "debugmodel": _args(dim=256, n_layers=6, n_heads=8, vocab_size=4096),
    # the debug student 1.5x wider, same depth (about 2x its FLOPs per token): does LET's effect move with width?
    "debugwide": _args(dim=384, n_layers=6, n_heads=8, vocab_size=4096),
    # the paper's LLaMA-architecture students; vocab_size is replaced by the teacher's
    "1.4B": _args(dim=2048, n_layers=24, n_heads=16, multiple_of=256, ffn_dim_multiplier=5632 / 5461),
    "3B": _args(dim=2560, n_layers=32, n_heads=20, multiple_of=256),
    "7B": _args(dim=4096, n_layers=32, n_heads=32, multiple_of=256),
    # Llama-3-70B's shape (ffn 28672, 8 KV heads): the parallelism estimate's 70B student (TP 8 x PP 2 x FSDP 4)
    "70B": _args(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, ffn_dim_multiplier=1.3, multiple_of=4096),
}


def ffn_hidden_dim(args: TransformerModelArgs) -> int:
    """SwiGLU width exactly as torchtitan's FeedForward computes it (HF's intermediate_size)."""
    hidden = int(2 * 4 * args.dim / 3)
    if args.ffn_dim_multiplier is not None:
        hidden = int(args.ffn_dim_multiplier * hidden)
    return args.multiple_of * ((hidden + args.multiple_of - 1) // args.multiple_of)


def get_train_spec() -> TrainSpec:
    return student_train_spec(llama3_train_spec(), Student, student_args, StudentStateDictAdapter)
