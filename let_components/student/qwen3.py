"""The `let_qwen3` student: torchtitan's qwen3 model (q/k norm, explicit head_dim; blocks, forward, parallelize_qwen3)
in untied flavors.

Untied on purpose: with tied embeddings torchtitan's qwen3 shards `tok_embeddings` and `output` as two FSDP2 groups
that share one parameter, which torch 2.13's duplicate-parameter check rejects on 2+ ranks (torchtitan issues 2252,
2522). Untied costs one more vocab x dim matrix: 151,936 x 2048 = 311M parameters for a Qwen-teacher vocabulary.
"""

from dataclasses import dataclass

from torchtitan.models.qwen3 import get_train_spec as qwen3_train_spec
from torchtitan.models.qwen3.model.args import Qwen3ModelArgs
from torchtitan.models.qwen3.model.model import Qwen3Model
from torchtitan.models.qwen3.model.state_dict_adapter import Qwen3StateDictAdapter
from torchtitan.protocols.train_spec import TrainSpec

from .spec import DropProjectionAdapterMixin, ProjectionMixin, StudentArgsMixin, student_train_spec

SPEC_NAME = "let_qwen3"


@dataclass
class Qwen3StudentArgs(StudentArgsMixin, Qwen3ModelArgs):
    pass


class Qwen3Student(ProjectionMixin, Qwen3Model):
    """torchtitan's Qwen3Model plus the optional LET projection."""


class Qwen3StudentStateDictAdapter(DropProjectionAdapterMixin, Qwen3StateDictAdapter):
    """torchtitan's qwen3 HF mapping without LET-only parameters."""


def _args(**kwargs) -> Qwen3StudentArgs:
    return Qwen3StudentArgs(qk_norm=True, rope_theta=1_000_000, enable_weight_tying=False, **kwargs)


qwen3_student_args = {
    # CPU debug student (6.8M parameters at a 4096-token vocabulary), the llama debug student's size
    "debugmodel": _args(dim=256, n_layers=6, n_heads=8, n_kv_heads=4, head_dim=32, hidden_dim=768, vocab_size=4096),
    # Qwen3-1.7B's shape, untied; vocab_size is replaced by the teacher's
    "1.7B": _args(dim=2048, n_layers=28, n_heads=16, n_kv_heads=8, head_dim=128, hidden_dim=6144),
    # Qwen3-8B's shape (untied in Qwen3 too)
    "8B": _args(dim=4096, n_layers=36, n_heads=32, n_kv_heads=8, head_dim=128, hidden_dim=12288),
}


def get_train_spec() -> TrainSpec:
    return student_train_spec(qwen3_train_spec(), Qwen3Student, qwen3_student_args, Qwen3StudentStateDictAdapter)
