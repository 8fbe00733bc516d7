"""Train -> export -> evaluate: a 2-step student checkpoint exported to HF gives transformers the same logits, and
recipes/reports/evaluate.py scores it with lm-evaluation-harness on a local task (tests/assets/lm_eval_task, no hub)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from let_components.student import Student, student_args
from recipes.reports.evaluate import accuracy_rows, average, markdown
from recipes.reports.export_hf import export_student
from tests.support import ASSETS, REPO
from tests.support.runs import train_ok
from tests.support.teachers import save_llama

FLAVOR = "debugmodel"
SEQ_LEN = 256  # training.seq_len of baseline_debug.toml
LOCAL_TASKS = REPO / "tests" / "assets" / "lm_eval_task"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(DCP folder of a 2-step baseline student, its tiny random teacher = tokenizer folder)."""
    tmp = tmp_path_factory.mktemp("train")
    teacher = save_llama(
        tmp / "teacher", tokenizer_dir=ASSETS / "tokenizer", vocab_size=4096, hidden_size=128,
        intermediate_size=352, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
    )
    train_ok(
        tmp / "run", "train_configs/baseline_debug.toml", "--training.steps", "2", "--checkpoint.enable",
        "--checkpoint.interval", "2", "--validation.no-enable", "--let.teacher_path", str(teacher),
        "--model.hf_assets_path", str(teacher),
    )
    return tmp / "run" / "checkpoint" / "step-2", teacher


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    folder, teacher = checkpoint
    return export_student(folder, FLAVOR, tmp_path_factory.mktemp("export") / "hf", teacher, max_seq_len=SEQ_LEN)


def load_student(folder: Path) -> Student:
    import torch.distributed.checkpoint as dcp

    args = dataclasses.replace(student_args[FLAVOR], vocab_size=4096, max_seq_len=SEQ_LEN)
    model = Student(args)
    state_dict = model.state_dict()
    dcp.load(state_dict, checkpoint_id=str(folder))
    model.load_state_dict(state_dict)
    return model.eval()


def test_exported_student_loads_in_transformers_with_the_same_logits(checkpoint, exported):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(exported).eval()
    assert hf.dtype == torch.float32
    student = load_student(checkpoint[0])
    ids = torch.randint(0, 4096, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = student(ids), hf(ids).logits
    assert got.shape == expected.shape == (2, 64, 4096)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_evaluate_scores_the_export_on_a_local_lm_eval_task(exported, tmp_path):
    pytest.importorskip("lm_eval")
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "recipes.reports.evaluate", "--model", str(exported), "--tasks", "let_tiny_mc",
         "--include-path", str(LOCAL_TASKS.relative_to(REPO)), "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    report = json.loads((out / "results.json").read_text())
    [row] = report["tasks"]
    assert row["task"] == "let_tiny_mc" and row["samples"] == 8
    assert 0.0 <= row["acc"] <= 1.0 and 0.0 <= row["acc_norm"] <= 1.0
    assert report["average_acc"] == row["acc"]
    assert report["num_fewshot"] == 1 and report["lm_eval"]["n-shot"] == {"let_tiny_mc": 1}
    assert "| let_tiny_mc | 8 |" in (out / "results.md").read_text()


def test_results_table_averages_accuracy_over_tasks():
    results = {
        "results": {
            "piqa": {"acc,none": 0.6, "acc_stderr,none": 0.01, "acc_norm,none": 0.62, "acc_norm_stderr,none": 0.01},
            "lambada_openai": {"acc,none": 0.3, "acc_stderr,none": 0.02, "perplexity,none": 40.0},
        },
        "n-samples": {"piqa": {"effective": 1838}, "lambada_openai": {"effective": 5153}},
    }
    rows = accuracy_rows(results, ["lambada_openai", "piqa"])
    assert [row["task"] for row in rows] == ["lambada_openai", "piqa"]
    assert rows[0]["acc_norm"] is None
    assert average(rows) == pytest.approx(0.45)
    assert average(rows, "acc_norm") == pytest.approx(0.62)
    table = markdown(rows, "exports/x", 1)
    assert "| lambada_openai | 5153 | 30.0 ± 2.0 | - |" in table
    assert "**45.0**" in table
