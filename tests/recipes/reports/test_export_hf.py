"""HF export of the new students: a qwen3 student round-trips to transformers' Qwen3ForCausalLM (same logits), the
LET projection is dropped, and the MoE student is refused by name."""

import dataclasses

import pytest
import torch
import torch.distributed.checkpoint as dcp

from let_components.student.qwen3 import Qwen3Student, qwen3_student_args
from recipes.reports.export_hf import export_student
from tests.support import ASSETS


def _qwen3_checkpoint(folder) -> Qwen3Student:
    """A random tiny qwen3 student with a learned projection, saved as torchtitan saves a model-only DCP checkpoint."""
    torch.manual_seed(0)
    args = dataclasses.replace(qwen3_student_args["debugmodel"], vocab_size=4096, max_seq_len=32,
                               projection_dim=16)
    model = Qwen3Student(args)
    with torch.no_grad():
        model.init_weights()
    dcp.save(model.state_dict(), checkpoint_id=str(folder))
    return model


def test_qwen3_student_exports_to_transformers_with_the_same_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    student = _qwen3_checkpoint(tmp_path / "step-1")
    out = export_student(tmp_path / "step-1", "debugmodel", tmp_path / "hf", ASSETS / "teacher_debug",
                         max_seq_len=32, model="let_qwen3")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "Qwen3ForCausalLM"
    assert not any("projection" in name for name, _ in hf.named_parameters())
    ids = torch.randint(0, 4096, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, student(ids), atol=1e-4, rtol=0)


def test_moe_student_export_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--model let_deepseek_v3: HF export covers let_llama, let_qwen3"):
        export_student(tmp_path, "debugmodel", tmp_path / "hf", ASSETS / "teacher_debug", model="let_deepseek_v3")
