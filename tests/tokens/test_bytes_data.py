"""Training through the byte-aligned teacher side (let.token_alignment = "bytes"), end to end on CPU ranks.

The map itself is checked against a brute-force reference in tests/tokens/test_bytes_keys.py; here the trainer's
side: the teacher keys never reach the student's forward, the term counts its own positions, a resumed run
reproduces the uninterrupted one, and FSDP2 on 2 gloo ranks and torch.compile apply unchanged.
"""

import shutil
from pathlib import Path

import pytest

from tests.support import ASSETS
from tests.support.logs import assert_same_scalars, let_lines, tb_scalars
from tests.support.runs import SHORT_RUN, TINY_BATCH, train_ok
from tests.support.teachers import save_llama
from tests.support.tokenizers import save_qwen_tokenizer

LET_DEBUG = "train_configs/let_debug.toml"
TAGS = ("loss_metrics/global_avg_loss", "let/alignment_loss")
BYTES = ("--let.token_alignment", "bytes")


def test_identical_tokenizers_through_the_byte_path_give_the_same_losses(tmp_path):
    """With the teacher's own tokenizer the byte path must rebuild position j = position j (the teacher's ids, its
    count of positions): the same losses as the same-tokenizer path, to 1e-6, through the byte path."""
    args = (*SHORT_RUN, *TINY_BATCH, "--training.steps", "5", "--let.stop_step", "3")
    same = train_ok(tmp_path / "same", LET_DEBUG, *args)
    # the windows as cut: a BOS put before a mid-document window would be a token the plain path does not have
    aligned = train_ok(tmp_path / "bytes", LET_DEBUG, *args, *BYTES, "--let.no-teacher_window_bos")
    assert "token_alignment=bytes" in aligned and "token_alignment=same" in same
    # review finding: `same` ignored let.teacher_window_bos without saying so (a Gemma teacher read mid-document
    # windows without the BOS it trained with): it stays off there, and the start-up line says it
    assert "token_alignment=same: the teacher reads the student's windows as packed (let.teacher_window_bos: " \
           "token_alignment=bytes only)" in same
    assert sorted(let_lines(aligned)) == [1, 2, 3]
    assert_same_scalars(tmp_path / "same", tmp_path / "bytes", TAGS[:1], range(1, 6))
    assert_same_scalars(tmp_path / "same", tmp_path / "bytes", TAGS[1:], range(1, 4))
    assert set(tb_scalars(tmp_path / "bytes", "let/lost").values()) == {0.0}


@pytest.fixture(scope="module")
def other_teacher(tmp_path_factory) -> Path:
    """A tiny random Llama in a Qwen-style 512-token vocabulary: another tokenizer than the student's own."""
    folder = tmp_path_factory.mktemp("teacher") / "qwen_vocab"
    save_llama(folder, vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2)
    save_qwen_tokenizer(folder, vocab_size=512)
    return folder


# 2 gloo ranks, compiled student blocks and teacher, 8 steps teaching through step 6, a checkpoint every 2 steps
# (saves at 2 and 4 fall mid-teaching, with the teacher side's buffers in the dataset state), validation at 4 and 8
RESUMABLE = (*SHORT_RUN, *TINY_BATCH, *BYTES, "--model.hf_assets_path", str(ASSETS / "tokenizer"),
             "--training.steps", "8", "--let.stop_step", "6", "--checkpoint.enable", "--checkpoint.interval", "2",
             "--compile.enable", "--compile.backend", "aot_eager", "--validation.enable", "--validation.freq", "4",
             "--validation.steps", "2", "--validation.local_batch_size", "2", "--validation.seq_len", "64")


def _student_parameters(vocab_size: int) -> int:
    import dataclasses

    import torch

    from let_components.student import Student, student_args

    with torch.device("meta"):
        student = Student(dataclasses.replace(student_args["debugmodel"], vocab_size=vocab_size))
    return sum(p.numel() for p in student.parameters())


def test_another_tokenizer_on_two_ranks_compiled_resumes_mid_teaching_exactly(tmp_path, other_teacher):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    log = train_ok(full, LET_DEBUG, *RESUMABLE, "--let.teacher_path", str(other_teacher), ngpu=2)
    for line in ("Applied FSDP to the model", "Compiling each TransformerBlock with torch.compile",
                 "token_alignment=bytes", "teacher sanity check: LM loss"):
        assert line in log
    lines = let_lines(log)
    assert sorted(lines) == list(range(1, 7)) and log.count("teacher released") == 1
    assert all(-1.0 <= line["cosine"] <= 1.0 for line in lines.values())
    assert f"{_student_parameters(vocab_size=4096):,} total parameters" in log  # its own vocabulary, not the 512
    shutil.copytree(full / "checkpoint" / "step-4", resumed / "checkpoint" / "step-4")
    log = train_ok(resumed, LET_DEBUG, *RESUMABLE, "--let.teacher_path", str(other_teacher), ngpu=2)
    assert "Training starts at step 5" in log and sorted(let_lines(log)) == [5, 6]
    assert_same_scalars(full, resumed, TAGS[:1], range(5, 9))
    assert_same_scalars(full, resumed, (*TAGS[1:], "let/lost"), (5, 6))
    assert_same_scalars(full, resumed, ("validation_metrics/loss",), (8,))
