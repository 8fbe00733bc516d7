"""recipes/assets/reshard_data.py: N shards holding every input line exactly once, byte for byte, balanced, and
streamed by local_files one shard per file; bad input leaves nothing behind."""

import json

import pytest

from let_components.data import load_local_files
from let_components.data.files import raw_lines
from recipes.assets import reshard_data
from tests.support.data import jsonl, numbered_documents, write_file

DOCUMENTS = numbered_documents(200)


@pytest.fixture
def copy(tmp_path):
    """3 input shards of a local copy, of three kinds, records with fields besides "text" (kept as they are)."""
    source = tmp_path / "copy"
    for i, ending in enumerate((".jsonl", ".jsonl.gz", ".jsonl.zst")):
        write_file(source / f"{i:02d}{ending}", jsonl(DOCUMENTS[i::3], meta={"pile_set_name": f"part {i}"}))
    return source


def _lines(folder):
    return sorted(line for f in sorted(folder.iterdir()) for line in raw_lines(f))


@pytest.mark.parametrize("compression", ["zst", "gz"])
def test_every_document_lands_in_exactly_one_of_n_balanced_shards(copy, tmp_path, compression, capsys):
    out = tmp_path / "resharded"
    written = reshard_data.main(["--input", str(copy), "--out", str(out), "--shards", "4",
                                 "--compression", compression])
    assert _lines(out) == _lines(copy)  # every line once, byte for byte (meta included)
    assert sorted(p.name for p in out.iterdir()) == [f"0{i}.jsonl.{compression}" for i in range(4)]
    longest = max(len(line) + 1 for line in _lines(copy))
    sizes = [shard.bytes for shard in written]
    assert max(sizes) - min(sizes) <= longest
    streamed = load_local_files(str(out))
    assert streamed.n_shards == 4 and sorted(row["text"] for row in streamed) == sorted(DOCUMENTS)
    printed = capsys.readouterr().out
    assert "200 documents from 3 files -> 4 shards" in printed and "degree of 1, 2, 4" in printed


def test_a_bad_record_is_named_and_leaves_no_shard_behind(copy, tmp_path):
    write_file(copy / "03.jsonl", jsonl(["fine"]) + json.dumps({"body": "no text"}).encode() + b"\n")
    out = tmp_path / "resharded"
    with pytest.raises(SystemExit, match=r"03.jsonl, line 2: no \"text\" string"):
        reshard_data.main(["--input", str(copy), "--out", str(out), "--shards", "4"])
    assert list(out.iterdir()) == []


def test_refuses_a_non_empty_out_folder_and_files_it_cannot_reshard(copy, tmp_path):
    with pytest.raises(SystemExit, match="--out=.*not empty"):
        reshard_data.main(["--input", str(copy), "--out", str(copy), "--shards", "2"])
    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "a.parquet").write_bytes(b"")
    with pytest.raises(SystemExit, match="reshards .jsonl, .jsonl.gz and .jsonl.zst files only"):
        reshard_data.main(["--input", str(tmp_path / "parquet"), "--out", str(tmp_path / "o"), "--shards", "2"])
    with pytest.raises(SystemExit, match="--shards=0"):
        reshard_data.main(["--input", str(copy), "--out", str(tmp_path / "o"), "--shards", "0"])
