"""recipes/probes/data_speed.py: each stage's rate over a .jsonl.zst miniature, the teacher side's with
token_alignment = "bytes", and the worker count that follows from them."""

import pytest

from recipes.probes import data_speed
from tests.support import ASSETS
from tests.support.data import numbered_documents, write_shards


def test_workers_needed_follow_the_rate_and_bytes_allows_one():
    assert data_speed.workers_line(90_000, 45_000, False).startswith("1 dataloader worker per rank keeps up")
    assert "50% of the step's time" in data_speed.workers_line(90_000, 45_000, False)
    three = data_speed.workers_line(20_000, 45_000, False)
    assert three.startswith("3 dataloader workers per rank keep up") and "at least 3 shards per rank" in three
    assert "at most 1 worker, so the data path would hold a GPU to 20,000 tokens/s" in \
        data_speed.workers_line(20_000, 45_000, True)


@pytest.mark.parametrize("alignment", ["same", "bytes"])
def test_times_each_stage_of_a_jsonl_zst_miniature(tmp_path, alignment, capsys):
    write_shards(tmp_path / "data", numbered_documents(300), shards=2)
    overrides = ["--let.token_alignment", "bytes", "--model.hf_assets_path", str(ASSETS / "tokenizer")] \
        if alignment == "bytes" else []
    rates = data_speed.main(["--data", str(tmp_path / "data"), "--seconds", "5", "--training.seq_len", "32",
                             "--json", str(tmp_path / "rates.json"), *overrides])
    stages = ["text MB/s", "student tokens/s"] + (["student tokens/s with the teacher side"] if alignment == "bytes"
                                                 else [])
    assert list(rates) == stages and all(rate > 0 for rate in rates.values())
    printed = capsys.readouterr().out
    assert f"token_alignment={alignment}" in printed and "at 45,000 student tokens/s per GPU, " in printed
    assert (tmp_path / "rates.json").is_file()
