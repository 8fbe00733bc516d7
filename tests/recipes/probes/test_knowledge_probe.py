"""recipes/probes/knowledge_probe.py: the ridge read-out against controls whose answer is known, the centred cosine by
hand, and one run of the tool on the tiny teacher and an untrained student checkpoint."""

import json

import pytest
import torch
import torch.distributed.checkpoint as dcp

from let_components.teacher import TeacherOptions, load_teacher
from let_components.tokens.per_byte import text_byte_lengths
from let_components.tokens.tokenizers import load_tokenizer
from recipes.common import initialised_student
from recipes.probes.knowledge_probe import (
    centred_cosine,
    fit_ridge,
    head_bits_per_byte,
    held_out_windows,
    main,
    r_squared,
    read_out,
    shuffled_fit,
)
from tests.support import ASSETS, REPO
from tests.support.config import parse_config

TEACHER = ASSETS / "teacher_debug"
CONFIG = str(REPO / "train_configs/let_debug.toml")


def test_ridge_recovers_a_linear_map_on_held_out_rows():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 12, generator=generator)
    weight, bias = torch.randn(12, 5, generator=generator), torch.randn(5, generator=generator)
    y = x @ weight + bias + 0.01 * torch.randn(3000, 5, generator=generator)
    ridge_map = fit_ridge(x[:2000], y[:2000], ridge=1e-6)
    torch.testing.assert_close(ridge_map.weight.float(), weight, atol=2e-3, rtol=0)
    torch.testing.assert_close(ridge_map.bias.float(), bias, atol=2e-3, rtol=0)
    assert r_squared(ridge_map(x[2000:]), y[2000:]) > 0.999
    # a strong penalty shrinks the map toward the mean: R^2 falls toward 0
    assert r_squared(fit_ridge(x[:2000], y[:2000], ridge=1e4)(x[2000:]), y[2000:]) < 0.01


def test_r_squared_is_one_for_the_target_zero_for_its_mean_and_pools_channels():
    target = torch.tensor([[0.0, 10.0], [2.0, 10.0], [4.0, 16.0]])
    assert r_squared(target, target) == pytest.approx(1.0)
    assert r_squared(target.mean(0).expand_as(target), target) == pytest.approx(0.0)
    # SST = 8 + 24 = 32; the prediction misses each entry of the first channel by 1: SSE = 3
    assert r_squared(target + torch.tensor([1.0, 0.0]), target) == pytest.approx(1 - 3 / 32)
    with pytest.raises(ValueError, match="rows must be the same positions"):
        fit_ridge(torch.zeros(3, 2), torch.zeros(4, 2), 1e-3)


def test_centred_cosine_by_hand():
    # both sides share the mean direction [2, 0] (cosine 1); what is left points opposite ways: raw (4 - 1) / 5 = 0.6
    student = torch.tensor([[2.0, 1.0], [2.0, -1.0]])
    teacher = torch.tensor([[2.0, -1.0], [2.0, 1.0]])
    assert centred_cosine(student, teacher) == pytest.approx(
        {"cosine": 0.6, "centred_cosine": -1.0, "mean_direction_cosine": 1.0})
    # a 4-wide teacher is resized to the student's 2 entries (align_corners: its first and last) as the run logs it
    wide = torch.tensor([[2.0, 7.0, 7.0, -1.0], [2.0, -7.0, -7.0, 1.0]])
    assert centred_cosine(student, wide) == pytest.approx(centred_cosine(student, teacher))


@pytest.fixture(scope="module")
def teacher_states():
    """The tiny teacher's final states on 24 held-out windows of 128 tokens of the sample corpus (half to fit)."""
    job_config = parse_config(CONFIG, "--validation.seq_len", "128")
    tokenizer = load_tokenizer(TEACHER, "let.teacher_path")
    inputs, labels = held_out_windows(job_config, tokenizer, 24)
    teacher = load_teacher(TEACHER, "cpu", torch.float32, TeacherOptions(max_seq_len=128))
    with torch.no_grad():
        states = teacher(inputs)
    return teacher, states, labels, torch.from_numpy(text_byte_lengths(tokenizer, "let.teacher_path"))


def test_teacher_states_read_themselves_out_and_shuffled_positions_read_nothing(teacher_states):
    teacher, states, labels, byte_lengths = teacher_states
    own = head_bits_per_byte(teacher, states[12:], labels[12:], byte_lengths)
    itself = read_out(states, states, 12, 1e-6, teacher, labels, byte_lengths)
    assert itself["r2"] > 0.999 and itself["bits_per_byte"] == pytest.approx(own, abs=0.01)
    shuffled = shuffled_fit(states, 12, seed=0)
    assert torch.equal(shuffled[12:], states[12:]) and not torch.equal(shuffled[:12], states[:12])
    chance = read_out(shuffled, states, 12, 1e-3, teacher, labels, byte_lengths)
    assert -0.15 < chance["r2"] < 0.02  # 1,536 fitted rows, 129 features: a little below 0 from overfitting
    assert chance["bits_per_byte"] > own + 0.5  # about the mean state: the unigram, not the teacher


def test_tool_on_an_untrained_student_writes_every_number(tmp_path):
    job_config = parse_config(CONFIG, "--let.projection", "linear")
    student = initialised_student(job_config, vocab_size=4096, projection_dim=128)
    checkpoint = tmp_path / "checkpoint" / "step-0"
    dcp.save(student.state_dict(), checkpoint_id=str(checkpoint))
    out = tmp_path / "probe.json"
    result = main(["--checkpoint", str(checkpoint), "--config", CONFIG, "--teacher", str(TEACHER),
                   "--sequences", "8", "--validation.seq_len", "64", "--let.projection", "linear",
                   "--json", str(out)])
    assert result == json.loads(out.read_text())
    assert (result["windows_fit"], result["windows_measured"], result["tokens_measured"]) == (4, 4, 4 * 64)
    assert result["cosine_map"] == "let_projection" and result["student_layer"] == 1
    # an untrained student: neither its map nor the chance map reads out what the teacher itself does
    assert result["mapped_bits_per_byte"] > result["teacher_bits_per_byte"]
    assert result["chance_bits_per_byte"] > result["teacher_bits_per_byte"]
    assert all(-1 <= result[key] <= 1 for key in ("cosine", "centred_cosine", "mean_direction_cosine"))
    with pytest.raises(SystemExit, match="token_alignment=bytes.*valid: let.token_alignment = 'same'"):
        main(["--checkpoint", str(checkpoint), "--config", CONFIG, "--let.token_alignment", "bytes"])
