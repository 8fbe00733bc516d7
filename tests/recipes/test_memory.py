"""The 7B memory estimate: parameter counts pinned to published figures, the table adds up, LET fits 8 x 80 GB."""

import dataclasses
import subprocess
import sys

import pytest

from let_components.student import student_args
from recipes.memory import (
    MemorySetup,
    estimate_memory,
    llama_3_2_1b_config,
    student_parameters,
    teacher_parameters,
    total,
)
from tests.helpers import REPO

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


def test_estimate_7b_cli_prints_the_table():
    result = subprocess.run(
        [sys.executable, "-m", "recipes.benchmark", "--estimate-7b"], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "P = 7,526,944,768 parameters" in result.stdout
    assert "| **total** |" in result.stdout
