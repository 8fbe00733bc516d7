"""recipes.probes.caught_up_cost times the work of one caught-up check on the run's shapes: the FLOPs it states follow
from the teacher's head and the [let] keys, and the per-step cost is the per-check cost times the micro-batches a
rank runs per step (observe runs once per micro-batch) over caught_up_every."""

import re
import sys

import pytest

from recipes.probes import caught_up_cost


def measure(monkeypatch, capsys, *overrides: str) -> str:
    argv = ["caught_up_cost", "--config", "train_configs/let_debug.toml", "--repeats", "1", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    caught_up_cost.main()
    return capsys.readouterr().out


# (sequences, every, extra overrides, micro-batches per step): let_debug.toml has local_batch_size 8 and no global
@pytest.mark.parametrize("sequences, every, extra, microbatches", [
    (4, 10, (), 1),
    (2, 5, ("--training.global_batch_size", "32"), 4),  # gradient accumulation: 4 observes per step
    (2, 5, ("--training.global_batch_size", "32", "--data-parallel", "2"), 2),
])
def test_states_the_heads_flops_and_the_cost_per_step(monkeypatch, capsys, sequences, every, extra, microbatches):
    out = measure(monkeypatch, capsys, "--let.caught_up_sequences", str(sequences), "--let.caught_up_every",
                  str(every), *extra)
    # assets/teacher_debug: 128 wide, 4,096 rows, untied head; let_debug.toml: windows of 256 tokens
    assert f"teacher {sequences} x 256 tokens, dim 128, vocab 4096" in out
    gflop = float(re.search(r"\(([\d.]+) GFLOP in the head\)", out).group(1))
    assert gflop == pytest.approx(2 * sequences * 256 * 128 * 4096 / 1e9, abs=0.05)
    found = re.search(r"per check +([\d.]+) ms per micro-batch x (\d+) micro-batches per step; .* \(every \d+\) "
                      r"([\d.]+) ms", out)
    assert found, out
    check, counted, per_step = float(found[1]), int(found[2]), float(found[3])
    assert counted == microbatches
    # both printed to 0.1 ms: the check's rounding, scaled, plus the per-step figure's own
    assert per_step == pytest.approx(check * microbatches / every, abs=0.05 * microbatches / every + 0.051)
