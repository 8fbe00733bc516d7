"""The `let_deepseek_v3` student: torchtitan's deepseek_v3 MoE model (MLA attention, routed + shared experts,
auxiliary-loss-free load balancing through expert biases) with its own parallelize function and optimizer builder.

Its debug flavor trains on CPU: without SM90 GPUs torchtitan's MoE takes the for-loop expert path instead of
grouped-mm kernels.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.models.deepseek_v3 import get_train_spec as deepseek_v3_train_spec
from torchtitan.models.deepseek_v3.model.args import DeepSeekV3ModelArgs
from torchtitan.models.deepseek_v3.model.model import DeepSeekV3Model
from torchtitan.models.deepseek_v3.model.state_dict_adapter import DeepSeekV3StateDictAdapter
from torchtitan.models.moe import MoEArgs
from torchtitan.protocols.model import AttentionMasksType
from torchtitan.protocols.train_spec import TrainSpec

from .spec import DropProjectionAdapterMixin, ProjectionMixin, StudentArgsMixin, student_train_spec

SPEC_NAME = "let_deepseek_v3"


@dataclass
class DeepSeekV3StudentArgs(StudentArgsMixin, DeepSeekV3ModelArgs):
    hf_init_supported: ClassVar[bool] = False
    """MLA projections, routed experts (3-D weights) and the router have no `hf` rule: `student.init` is refused."""


class DeepSeekV3Student(ProjectionMixin, DeepSeekV3Model):
    """torchtitan's DeepSeekV3Model plus the optional LET projection."""

    def get_attention_masks(self, input_batch: torch.Tensor, tokenizer: BaseTokenizer,
                            extra_inputs: dict[str, torch.Tensor] | None = None) -> AttentionMasksType:
        """torchtitan's validator asks every model for masks and takes a TypeError as "none": llama3's raises it for
        SDPA, deepseek_v3's builds flex masks anyway and its SDPA attention then asserts on them at validation."""
        if self.model_args.attn_type == "sdpa":
            raise TypeError("SDPA attention takes no attention masks")
        return super().get_attention_masks(input_batch, tokenizer, extra_inputs)


class DeepSeekV3StudentStateDictAdapter(DropProjectionAdapterMixin, DeepSeekV3StateDictAdapter):
    """torchtitan's deepseek_v3 HF mapping without LET-only parameters."""


deepseek_v3_student_args = {
    # CPU debug MoE student: 1 dense + 3 MoE blocks, 8 routed experts (top 2) + 1 shared, MLA without q LoRA
    "debugmodel": DeepSeekV3StudentArgs(
        vocab_size=4096, dim=256, inter_dim=768, moe_inter_dim=256, n_layers=4, n_dense_layers=1, n_heads=8,
        moe_args=MoEArgs(num_experts=8, num_shared_experts=1, top_k=2, score_func="softmax", route_norm=False,
                         score_before_experts=False),
        q_lora_rank=0, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, mscale=0.70,
    ),
}


def get_train_spec() -> TrainSpec:
    return student_train_spec(
        deepseek_v3_train_spec(), DeepSeekV3Student, deepseek_v3_student_args, DeepSeekV3StudentStateDictAdapter
    )
