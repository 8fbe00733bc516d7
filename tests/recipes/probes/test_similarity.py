import json

import pytest
import torch

from recipes.probes.similarity import linear_cka, main, read_results, summary_table
from tests.support import ASSETS, REPO
from tests.support.runs import TINY_BATCH, train_ok


def test_linear_cka_matches_a_hand_computation():
    # centred columns: x = [[-1], [0], [1]], y = [[-1, 1], [0, -2], [1, 1]] (already centred)
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[-1.0, 1.0], [0.0, -2.0], [1.0, 1.0]])
    # Yc^T Xc = [2, 0]: ||.||^2 = 4; ||Xc^T Xc|| = 2; Yc^T Yc = [[2, 0], [0, 6]]: ||.|| = sqrt(40)
    assert linear_cka(x, y) == pytest.approx(4 / (2 * 40**0.5))


def test_linear_cka_is_one_on_itself_and_invariant_to_rotation_and_isotropic_scaling():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=generator)
    assert linear_cka(x, x) == pytest.approx(1.0)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    assert linear_cka(x, 3.5 * x @ rotation + 2.0) == pytest.approx(1.0)
    y = torch.randn(200, 40, generator=generator)  # another width
    assert linear_cka(x, y) == pytest.approx(linear_cka(x, 0.1 * y @ torch.linalg.qr(torch.randn(40, 40))[0]))
    assert linear_cka(x, y) < 0.2  # independent features: near 0
    # not invariant to a non-isotropic scaling
    assert linear_cka(x, x * torch.linspace(0.1, 10, 16)) < 0.9


def test_linear_cka_refuses_different_examples():
    with pytest.raises(ValueError, match="rows must be the same examples"):
        linear_cka(torch.zeros(3, 2), torch.zeros(4, 2))


def test_similarity_cli_on_a_two_step_checkpoint(tmp_path):
    dump = tmp_path / "run"
    config = str(REPO / "train_configs/let_debug.toml")
    train_ok(dump, config, "--training.steps", "2", "--let.stop_step", "2", "--checkpoint.enable",
             "--checkpoint.interval", "2", *TINY_BATCH, "--let.projection", "linear", "--validation.no-enable")
    out = tmp_path / "similarity.json"
    result = main(["--checkpoint", str(dump / "checkpoint/step-2"), "--config", config,
                   "--teacher", str(ASSETS / "teacher_debug"), "--sequences", "2", "--json", str(out),
                   "--validation.seq_len", "64"])
    assert result == json.loads(out.read_text())
    assert result["tokens"] == 2 * 64 and result["cosine_map"] == "let_projection"
    assert 0 < result["linear_cka"] <= 1 and -1 <= result["cosine"] <= 1


def test_summary_reads_every_measurement_into_one_row_per_run(tmp_path):
    for run, step, cka, cosine in (("baseline_s0", 100, 0.5, 0.01), ("let_s0", 100, 0.75, 0.125),
                                   ("let_s0", 200, 0.8, 0.0625)):
        (tmp_path / f"{run}_step{step}.json").write_text(json.dumps({"linear_cka": cka, "cosine": cosine}))
    (tmp_path / "notes.json").write_text("{}")  # not a measurement
    runs = read_results(tmp_path)
    assert sorted(runs) == ["baseline_s0", "let_s0"] and sorted(runs["let_s0"]) == [100, 200]
    table = summary_table(runs).splitlines()
    assert table[0] == "| run | step 100: CKA / cos | step 200: CKA / cos |"
    assert table[2:] == ["| baseline_s0 | 0.500 / +0.010 | - |", "| let_s0 | 0.750 / +0.125 | 0.800 / +0.062 |"]
    assert main(["--summary", str(tmp_path)]) == summary_table(runs)
    with pytest.raises(ValueError, match="no RUN_stepN.json"):
        read_results(tmp_path / "empty")
