"""Reading local files (let_components/data/files.py): every line of every kind comes through once, and bad data
is one line naming the file, raised at the window that meets it (in a dataloader worker too)."""

import gzip
import json

import pytest
import zstandard
from torchtitan.components.tokenizer import HuggingFaceTokenizer
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

import let_components  # noqa: F401  (registers the datasets)
from let_components.data import files
from let_components.data.dataloader import TextDataloader
from let_components.data.files import DataError, documents, raw_lines
from tests.support import ASSETS
from tests.support.data import jsonl, numbered_documents, write_file

GOOD = numbered_documents(5000)
"""Several zstd blocks (128 KiB each): a file cut in half still has whole lines before the cut."""


def test_lines_across_chunks_and_zstd_frames_come_through_whole(tmp_path, monkeypatch):
    """A document longer than a read (The Pile has MB-long ones) and a file of several zstd frames (pzstd, the
    reshard tool) are read whole."""
    monkeypatch.setattr(files, "CHUNK", 64)
    long_document = "x" * 1000
    data = jsonl([*GOOD[:50], long_document, *GOOD[50:]])
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst"):
        path = write_file(tmp_path / name, data, frames=7)
        assert list(raw_lines(path)) == data.splitlines()
        assert [d["text"] for d in documents([str(path)])] == [*GOOD[:50], long_document, *GOOD[50:]]


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_file(tmp_path, case):
    """(file, what the error says about it)."""
    good = jsonl(GOOD)
    path = tmp_path / {"truncated zst": "cut.jsonl.zst", "truncated gz": "cut.jsonl.gz", "garbage": "garbage.jsonl.zst",
                       "record without text": "no_text.jsonl", "not json": "not_json.jsonl.zst"}[case]
    if case == "truncated zst":
        # a zstd stream reader ends such a file silently: the last whole line would be the data's end
        path.write_bytes(_cut(zstandard.ZstdCompressor().compress(good)))
        return path, "ends inside a zstd frame"
    if case == "truncated gz":
        path.write_bytes(_cut(gzip.compress(good)))
        return path, "EOFError"
    if case == "garbage":
        path.write_bytes(b"not zstd at all" * 100)
        return path, "ZstdError"
    if case == "record without text":
        write_file(path, good + json.dumps({"content": "x"}).encode() + b"\n")
        return path, r"line 5001: no \"text\" string in the record \(keys \['content'\]\)"
    write_file(path, good + b'{"text": "cut\n')
    return path, "line 5001: not a JSON record"


@pytest.fixture(scope="module")
def tokenizer():
    return HuggingFaceTokenizer(str(ASSETS / "tokenizer"))


@pytest.mark.parametrize("case", ["truncated zst", "truncated gz", "garbage", "record without text", "not json"])
def test_bad_data_is_one_line_naming_the_file_at_the_window_that_meets_it(tmp_path, tokenizer, case):
    path, says = _bad_file(tmp_path, case)
    dataset = HuggingFaceTextDataset("local_files", str(path), tokenizer, seq_len=16)
    windows = iter(dataset)
    # the documents before the bad spot are trained on (no check reads a whole shard first)
    if case not in ("garbage", "truncated gz"):
        next(windows)
    with pytest.raises(DataError, match=says) as error:
        list(windows)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_a_dataloader_worker_s_bad_data_is_still_one_line(tmp_path, tokenizer):
    """torch re-raises a worker's exception with the worker's traceback as its message: the line stays the line."""
    path = write_file(tmp_path / "no_text.jsonl", jsonl(GOOD[:20]) + json.dumps({"content": "x"}).encode() + b"\n")
    says = r'line 21: no "text" string'
    dataset = HuggingFaceTextDataset("local_files", str(path), tokenizer, seq_len=16)
    loader = TextDataloader(dataset, dp_rank=0, dp_world_size=1, batch_size=4, num_workers=1)
    with pytest.raises(DataError, match=says) as error:
        list(loader)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("case", ["truncated zst", "truncated gz"])
def test_a_file_cut_short_names_the_line_not_yet_whole(tmp_path, case):
    path, says = _bad_file(tmp_path, case)
    read = []
    with pytest.raises(DataError, match=says) as error:
        read.extend(documents([str(path)]))
    assert 0 < len(read) < len(GOOD) and read == [{"text": text} for text in GOOD[: len(read)]]
    assert str(error.value).startswith(f"{path}, line {len(read) + 1}: unreadable (")


def test_a_txt_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\r\ntwo\n\xff three\nfour\n")
    read = []
    with pytest.raises(DataError) as error:
        read.extend(documents([str(path)]))
    assert read == [{"text": "one"}, {"text": "two"}]
    assert str(error.value).startswith(f"{path}, line 3: unreadable (UnicodeDecodeError: ")


def test_a_parquet_file_without_a_text_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["a"]}), tmp_path / "a.parquet")
    with pytest.raises(DataError, match=r'a.parquet: no "text" column'):
        list(documents([str(tmp_path / "a.parquet")]))
