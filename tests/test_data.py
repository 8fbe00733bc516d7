import json

import pytest
from torchtitan.components.tokenizer import HuggingFaceTokenizer
from torchtitan.hf_datasets.text_datasets import DATASETS, HuggingFaceTextDataset

import let_components  # noqa: F401  (registers the datasets)
from let_components.config import LETConfigError
from let_components.data import load_local_files
from tests.support import ASSETS

DOCS = ["first document.", "second one, a bit longer.", "third."]


def _write(folder, kind):
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        (folder / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    elif kind == "txt":
        (folder / "a.txt").write_text("\n".join(DOCS) + "\n")
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": DOCS}), folder / "a.parquet")
    return folder


@pytest.mark.parametrize("kind", ["jsonl", "txt", "parquet"])
def test_local_files_load_a_file_or_a_folder(tmp_path, kind):
    folder = _write(tmp_path / kind, kind)
    assert [row["text"] for row in load_local_files(str(folder))] == DOCS
    single = next(folder.iterdir())
    assert [row["text"] for row in load_local_files(str(single))] == DOCS


def test_local_files_errors_name_the_key(tmp_path):
    with pytest.raises(LETConfigError, match="training.dataset_path="):
        load_local_files(str(tmp_path))
    _write(tmp_path, "jsonl")
    _write(tmp_path, "txt")
    with pytest.raises(LETConfigError, match="mixes file types"):
        load_local_files(str(tmp_path))


def test_sample_corpus_feeds_torchtitan_dataloader():
    assert {"sample_corpus", "sample_corpus_validation", "local_files", "pile"} <= DATASETS.keys()
    tokenizer = HuggingFaceTokenizer(str(ASSETS / "tokenizer"))
    dataset = HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, seq_len=64)
    batch, labels = next(iter(dataset))
    assert batch["input"].shape == labels.shape == (64,)
    assert batch["input"][0].item() == tokenizer.bos_id  # documents start with bos
    assert (batch["input"][1:] == labels[:-1]).all()
