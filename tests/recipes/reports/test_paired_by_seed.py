"""recipes/reports/paired_by_seed.py: each run paired with the baseline of its own seed (and step), read against a
threshold."""

import json

import pytest

from recipes.reports.paired_by_seed import main, paired, read_results


def _write(folder, name: str, **values) -> None:
    (folder / f"{name}.json").write_text(json.dumps(values))


def test_a_run_meets_the_threshold_only_when_every_seed_does(tmp_path):
    for seed, base, let, whole in ((0, 5.00, 4.97, 4.99), (1, 5.10, 5.08, 5.00)):
        _write(tmp_path, f"baseline_s{seed}", nats_per_token=base)
        _write(tmp_path, f"let_s{seed}", nats_per_token=let)
        _write(tmp_path, f"let_whole_s{seed}", nats_per_token=whole)
    _write(tmp_path, "teacher", nats_per_token=4.0)  # no seed: not a measurement to pair
    rows = paired(read_results(tmp_path, "nats_per_token"), "baseline", -0.02)
    assert [(r["run"], r["meets"]) for r in rows] == [("let", True), ("let_whole", False)]
    assert rows[0]["differences"] == pytest.approx({0: -0.03, 1: -0.02})
    assert rows[1]["differences"] == pytest.approx({0: -0.01, 1: -0.10})  # one large gain does not carry the other
    # one seed is not enough, however large its difference
    assert not paired({("baseline", None): {0: 5.0}, ("let", None): {0: 4.0}}, "baseline", -0.02)[0]["meets"]


def test_steps_pair_with_the_baselines_step_and_the_table_names_them(tmp_path):
    for seed in (0, 1):
        for step, base, let in ((100, 2.0, 1.9), (500, 1.5, 1.48)):
            _write(tmp_path, f"baseline_s{seed}_step{step}", mapped_bits_per_byte=base + seed)
            _write(tmp_path, f"let_s{seed}_step{step}", mapped_bits_per_byte=let + seed)
    text = main(["--results", str(tmp_path), "--key", "mapped_bits_per_byte", "--threshold", "-0.05",
                 "--json", str(tmp_path / "out" / "paired.json")])
    lines = text.splitlines()
    assert lines[0] == ("| run | step | seed 0: mapped_bits_per_byte - baseline | seed 1: mapped_bits_per_byte - "
                        "baseline | every seed <= -0.05 |")
    assert lines[2:] == ["| let | 100 | -0.1000 | -0.1000 | yes |", "| let | 500 | -0.0200 | -0.0200 | no |"]
    assert json.loads((tmp_path / "out" / "paired.json").read_text())["rows"][1]["meets"] is False


def test_bad_input_names_the_flag(tmp_path):
    with pytest.raises(SystemExit, match="--results .*: no RUN_sSEED.json"):
        main(["--results", str(tmp_path), "--key", "x", "--threshold", "0"])
    _write(tmp_path, "let_s0", bits_per_byte=1.0)
    with pytest.raises(SystemExit, match="--key nats_per_token: not in .*let_s0.json"):
        main(["--results", str(tmp_path), "--key", "nats_per_token", "--threshold", "0"])
    with pytest.raises(SystemExit, match="--baseline baseline: no such run among let"):
        main(["--results", str(tmp_path), "--key", "bits_per_byte", "--threshold", "0"])
