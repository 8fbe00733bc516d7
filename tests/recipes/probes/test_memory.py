"""The 7B memory estimate: parameter counts pinned to published figures, the table adds up, LET fits 8 x 80 GB."""

import dataclasses
import subprocess
import sys

import pytest

from let_components.student import Student, student_args
from recipes.probes.memory import (
    MemorySetup,
    distillation_bytes,
    estimate_memory,
    llama_3_2_1b_config,
    student_parameters,
    teacher_parameters,
    total,
)
from tests.support import REPO

LLAMA_2_7B_PARAMETERS = 6_738_415_616
"""Published count of Llama-2-7B: the same block shapes as the 7B flavor, untied embeddings, vocab 32000."""
LLAMA_3_2_1B_PARAMETERS = 1_235_814_400
"""Published count of Llama-3.2-1B (tied embeddings)."""


def _student_7b():
    return dataclasses.replace(student_args["7B"], vocab_size=128256)


def test_7b_student_has_llama2_7b_blocks_with_llama3_vocabulary():
    params = student_parameters(_student_7b())
    extra_vocabulary = 2 * (128256 - 32000) * 4096  # embedding and output rows
    assert params.total == LLAMA_2_7B_PARAMETERS + extra_vocabulary
    assert params.blocks == 32
    assert params.total == params.embedding + params.output + params.blocks * params.per_block + 4096  # final norm


def test_teacher_count_matches_llama_3_2_1b():
    assert teacher_parameters(llama_3_2_1b_config()) == LLAMA_3_2_1B_PARAMETERS


def test_sharded_states_follow_16_bytes_per_parameter_and_7b_fits_80gb():
    setup = MemorySetup()
    student = _student_7b()
    items = estimate_memory(student, llama_3_2_1b_config(), setup, (1, 2))
    p = student_parameters(student).total
    sharded = sum(item.gib[1] for item in items if item.name.endswith(", sharded"))
    assert sharded == pytest.approx(16 * p / setup.gpus / 2**30)
    teacher = next(item for item in items if item.name.startswith("teacher weights"))
    assert teacher.gib[1] == pytest.approx(2 * LLAMA_3_2_1B_PARAMETERS / 2**30)
    sums = total(items)
    assert sums[1] < sums[2] < setup.gpu_capacity_gib


def test_memory_cli_prints_the_7b_table_by_default():
    result = subprocess.run(
        [sys.executable, "-m", "recipes.probes.memory"], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "P = 7,526,944,768 parameters" in result.stdout
    assert "| **total** |" in result.stdout


QWEN3_0_6B_CONFIG = {  # config.json of Qwen/Qwen3-0.6B (public): 28 x 1024, 16/8 heads of 128, tied
    "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": True, "use_sliding_window": False,
}
QWEN3_0_6B_PARAMETERS = 596_049_920
"""Qwen3-0.6B: 0.44B non-embedding + 151,936 x 1024 tied embedding (the model card's 0.6B / 0.44B)."""


def test_qwen3_student_with_a_qwen3_teacher_is_estimated_and_moe_students_are_refused():
    from let_components.student.deepseek_v3 import DeepSeekV3Student, deepseek_v3_student_args
    from recipes.probes.memory import format_estimate

    assert teacher_parameters(QWEN3_0_6B_CONFIG) == QWEN3_0_6B_PARAMETERS
    text = format_estimate("let_qwen3", "1.7B", QWEN3_0_6B_CONFIG, "Qwen3-0.6B")
    # Qwen3-1.7B's blocks, untied: 2 x 151,936 x 2048 vocabulary rows
    assert "P = 2,031,739,904 parameters" in text and "embedding 311,164,928" in text
    assert "| **total** |" in text
    with pytest.raises(ValueError, match="dense students"):
        student_parameters(deepseek_v3_student_args["debugmodel"], DeepSeekV3Student)


def test_distillation_term_at_1_4b_adds_one_float32_copy_of_the_logits_plus_a_chunk():
    """1.4B: vocabulary 49,152, 8k tokens per micro-batch (b = 4, s = 2048); CE alone holds 1.6 GB in float32."""
    tokens, vocab = 4 * 2048, 49152
    added = distillation_bytes(tokens, vocab, chunk_tokens=512)
    float32_copy = 4 * tokens * vocab
    assert float32_copy == pytest.approx(1.61e9, rel=0.01)
    assert added["teacher logits"] + added["gradient buffer"] == float32_copy  # bf16 + bf16
    assert added["chunk working set"] == 4 * 8 * 512 * vocab and added["chunk working set"] == float32_copy / 2
    student = dataclasses.replace(student_args["1.4B"], vocab_size=vocab)
    smollm = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
              "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": vocab, "tie_word_embeddings": True,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048}
    rows = {signal: {i.name: i.gib[4] for i in estimate_memory(student, smollm, MemorySetup(), (4,), signal=signal)}
            for signal in ("hidden", "logits")}
    assert "alignment term" not in rows["logits"] and "alignment term" in rows["hidden"]
    assert rows["logits"]["distillation term (KL)"] == pytest.approx(sum(added.values()) / 2**30)


def test_the_layout_estimate_puts_the_teacher_on_block_ks_stage_only():
    """TP x PP x FSDP: the stages' parameters add up to the student's (a meta build cut as torchtitan cuts it), the
    teacher's rows are on block k's stage alone, and the head's logits on the last stage alone."""
    from recipes.probes.memory import layout_estimate, stage_shares

    student = dataclasses.replace(_student_7b(), vocab_size=128256)
    shares = stage_shares(student, Student, pp=2, student_layer=20)
    assert sum(share.parameters for share in shares) == student_parameters(student).total
    assert [share.holds_block_k for share in shares] == [False, True] and [s.blocks for s in shares] == [16, 16]
    _, rows = layout_estimate(student, llama_3_2_1b_config(), gpus=32, tp=2, pp=2, student_layer=20, seq_len=2048,
                              local_batch=2, microbatch=1)
    teacher = rows["teacher weights bf16 (block k's stage only)"]
    assert teacher[0] == 0 and teacher[1] == pytest.approx(2 * 1_235_814_400 / 2**30)
    assert rows["logits + cross-entropy (last stage, loss parallel)"][0] == 0
    sharded = rows["weights + gradients + AdamW, fp32, sharded (16 P_stage / tp / dp)"]
    assert sharded[1] == pytest.approx(16 * shares[1].parameters / 2 / 8 / 2**30)
