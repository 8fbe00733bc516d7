"""The throughput benchmark: step selection and aggregation on hand-made numbers, then one tiny real run.

No test asserts a timing value: CPU timings on a shared machine are noise; only structure and arithmetic are pinned.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from let_components.teacher import load_teacher
from recipes.assets.teacher_shapes import TEACHER_SHAPES
from recipes.reports.benchmark.measure import TAGS, aggregate, let_vs_baseline, phase_steps, run_phase_metrics, spread
from recipes.reports.benchmark.random_teacher import make_random_teacher
from recipes.reports.benchmark.report import format_summary
from tests.support import ASSETS, REPO


def test_phase_steps_drop_warmup_and_the_step_that_frees_the_teacher():
    assert phase_steps(steps=10, stop_step=5, warmup=2) == {"aligning": [3, 4, 5], "after": [7, 8, 9, 10]}
    # warm-up longer than the aligning phase leaves nothing to measure there
    with pytest.raises(ValueError, match="phase 'aligning'"):
        phase_steps(steps=10, stop_step=2, warmup=2)
    with pytest.raises(ValueError, match="phase 'after'"):
        phase_steps(steps=5, stop_step=4, warmup=1)


def _scalars(tps: dict[int, float], memory: dict[int, float]) -> dict[str, dict[int, float]]:
    return {
        "tokens_per_s": tps,
        "step_ms": {s: 1000.0 / v for s, v in tps.items()},  # seconds per step for 1000 tokens
        "mfu_pct": {s: v / 100 for s, v in tps.items()},
        "peak_memory_gib": memory,
        "peak_active_gib": {s: v / 2 for s, v in memory.items()},
    }


def test_run_metrics_are_medians_over_steps_and_peak_memory_is_the_max():
    scalars = _scalars({1: 1.0, 2: 100.0, 3: 300.0, 4: 200.0}, {1: 9.0, 2: 1.0, 3: 3.0, 4: 2.0})
    metrics = run_phase_metrics(scalars, [2, 3, 4])
    assert metrics["tokens_per_s"] == 200.0  # the slow step 1 (warm-up) is not among the measured steps
    assert metrics["step_ms"] == pytest.approx(1000 * 1000.0 / 200.0)  # logged in seconds, reported in ms
    assert metrics["mfu_pct"] == 2.0
    assert (metrics["peak_memory_gib"], metrics["peak_active_gib"]) == (3.0, 1.5)
    with pytest.raises(ValueError, match=r"steps \[5\]"):
        run_phase_metrics(scalars, [4, 5])


def test_spread_is_mean_range_and_sample_std():
    s = spread([1.0, 2.0, 3.0])
    assert (s.mean, s.min, s.max, s.std) == (2.0, 1.0, 3.0, 1.0)
    assert spread([5.0]).std == 0.0


def _run(config: str, repeat: int, tps: float, memory: float) -> dict:
    phase = {"tokens_per_s": tps, "step_ms": 1000.0 / tps, "mfu_pct": 1.0, "peak_memory_gib": memory,
             "peak_active_gib": memory}
    phases = {"aligning": phase, "after": dict(phase, tokens_per_s=2 * tps)}
    return {"config": config, "repeat": repeat, "phases": phases}


def test_ratios_come_from_repeat_means_and_the_spread_from_each_alternating_pair():
    runs = [
        _run("baseline", 1, 100.0, 2.0), _run("let", 1, 90.0, 2.5),
        _run("baseline", 2, 200.0, 2.0), _run("let", 2, 160.0, 2.7),
    ]
    results = aggregate(runs)
    assert results["let"]["aligning"]["tokens_per_s"].values == [90.0, 160.0]
    comparison = let_vs_baseline(results)["aligning"]
    tps = comparison["tokens_per_s_ratio"]
    assert tps.value == pytest.approx(125.0 / 150.0)
    assert tps.per_repeat == pytest.approx([0.9, 0.8])
    assert (tps.min, tps.max) == pytest.approx((0.8, 0.9))
    memory = comparison["peak_memory_delta_gib"]
    assert memory.value == pytest.approx(0.6)
    assert memory.per_repeat == pytest.approx([0.5, 0.7])


def test_random_teacher_folder_loads_with_hf_llama_names(tmp_path):
    """Key names and config keys are HF Llama's: the teacher loader and transformers agree on its output."""
    transformers = pytest.importorskip("transformers")
    folder = make_random_teacher(tmp_path / "teacher", TEACHER_SHAPES["debug"], ASSETS / "tokenizer")
    assert (folder / "tokenizer.json").is_file()
    tokens = torch.randint(0, 4096, (2, 16))
    teacher = load_teacher(folder, "cpu", torch.float32)
    reference = transformers.LlamaModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        expected = reference(tokens).last_hidden_state
        assert torch.allclose(teacher(tokens), expected, atol=1e-5, rtol=1e-4)


def test_benchmark_runs_both_configs_and_both_phases(tmp_path):
    teacher = make_random_teacher(tmp_path / "teacher", TEACHER_SHAPES["debug"], ASSETS / "tokenizer")
    out = tmp_path / "bench"
    command = [
        sys.executable, "-m", "recipes.reports.benchmark", "--baseline", "train_configs/baseline_debug.toml",
        "--let", "train_configs/let_debug.toml", "--steps", "6", "--stop-step", "3", "--warmup", "1",
        "--repeats", "1", "--out", str(out), "--label", "tiny",
        "--", "--training.seq_len", "64", "--training.local_batch_size", "2",
        "--let.teacher_path", str(teacher), "--model.hf_assets_path", str(teacher),
    ]
    # one thread per process: this checks behaviour, not speed, on a shared 2-core machine
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| LET | aligning (2-3) |" in result.stdout
    assert (out / "benchmark.md").read_text() in result.stdout

    report = json.loads((out / "benchmark.json").read_text())
    assert [(r["config"], r["repeat"]) for r in report["runs"]] == [("baseline", 1), ("let", 1)]
    assert report["measured_steps"] == {"aligning": [2, 3], "after": [5, 6]}
    for key in ("device", "torch", "torchtitan", "date", "command"):
        assert report["meta"][key]
    results, comparison = report["results"], report["comparison"]
    for config in ("baseline", "let"):
        for phase in ("aligning", "after"):
            assert set(results[config][phase]) == set(TAGS)
            assert results[config][phase]["tokens_per_s"]["mean"] > 0
            assert results[config][phase]["peak_memory_gib"]["mean"] > 0
    for phase in ("aligning", "after"):
        let, base = results["let"][phase], results["baseline"][phase]
        tps = comparison[phase]["tokens_per_s_ratio"]
        assert tps["value"] == pytest.approx(let["tokens_per_s"]["mean"] / base["tokens_per_s"]["mean"], rel=1e-12)
        pairs = zip(let["tokens_per_s"]["values"], base["tokens_per_s"]["values"], strict=True)
        assert tps["per_repeat"] == pytest.approx([a / b for a, b in pairs], rel=1e-12)
        memory = comparison[phase]["peak_memory_delta_gib"]["value"]
        assert memory == pytest.approx(let["peak_memory_gib"]["mean"] - base["peak_memory_gib"]["mean"], abs=1e-12)
    assert report["teacher"]["ms_per_step"] > 0
    assert (report["teacher"]["local_batch_size"], report["teacher"]["seq_len"]) == (2, 64)
    assert report["teacher"]["dtype"] == "float32" and not report["teacher"]["compiled"]
    # the per-run log of the LET run shows the teacher released right after stop_step
    assert "teaching finished after step 3" in (out / "runs" / "let_1" / "train.log").read_text()
    assert "| tiny |" in format_summary([report])
