"""recipes.caught_up_cost times the work of one caught-up check on the run's shapes: the FLOPs it states follow
from the teacher's head and the [let] keys, and the per-step cost is the per-check cost over caught_up_every."""

import re
import sys

import pytest

from recipes import caught_up_cost


def measure(monkeypatch, capsys, *overrides: str) -> str:
    argv = ["caught_up_cost", "--config", "train_configs/let_debug.toml", "--repeats", "1", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    caught_up_cost.main()
    return capsys.readouterr().out


@pytest.mark.parametrize("sequences, every", [(4, 10), (2, 5)])
def test_states_the_heads_flops_and_the_cost_per_step(monkeypatch, capsys, sequences, every):
    out = measure(monkeypatch, capsys, "--let.caught_up_sequences", str(sequences), "--let.caught_up_every",
                  str(every))
    # assets/teacher_debug: 128 wide, 4,096 rows, untied head; let_debug.toml: windows of 256 tokens
    assert f"teacher {sequences} x 256 tokens, dim 128, vocab 4096" in out
    gflop = float(re.search(r"\(([\d.]+) GFLOP in the head\)", out).group(1))
    assert gflop == pytest.approx(2 * sequences * 256 * 128 * 4096 / 1e9, abs=0.05)
    check, per_step = map(float, re.search(r"per check +([\d.]+) ms; .* \(every \d+\) ([\d.]+) ms", out).groups())
    assert per_step == pytest.approx(check / every, abs=0.051)
