import json

import pytest
import torch
from datasets import Dataset, IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from torchtitan.components.tokenizer import HuggingFaceTokenizer
from torchtitan.hf_datasets.text_datasets import DATASETS, HuggingFaceTextDataset

import let_components  # noqa: F401  (registers the datasets)
from let_components import data
from let_components.config import LETConfigError
from let_components.data import PILE, PILE_FILES, SAMPLE_CORPUS, load_local_files
from tests.support import ASSETS
from tests.support.data import jsonl, numbered_documents, write_file, write_pile

DOCS = ["first document.", "second one, a bit longer.", "third."]


@pytest.fixture(scope="module")
def tokenizer():
    return HuggingFaceTokenizer(str(ASSETS / "tokenizer"))


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
    elif kind == "json array":
        (folder / "a.json").write_text(json.dumps([{"text": d} for d in DOCS]))
    else:  # a compressed jsonl: the ending is the kind
        write_file(folder / f"a{kind}", jsonl(DOCS))
    return folder


@pytest.mark.parametrize("kind", ["jsonl", "txt", "parquet", ".jsonl.zst", ".jsonl.gz", "json array"])
def test_local_files_stream_a_file_or_a_folder(tmp_path, kind):
    folder = _write(tmp_path / kind, kind)
    streamed = load_local_files(str(folder))
    assert isinstance(streamed, IterableDataset)
    assert [row["text"] for row in streamed] == DOCS
    single = next(folder.iterdir())
    assert [row["text"] for row in load_local_files(str(single))] == DOCS


def test_local_files_give_one_shard_per_file_in_name_order(tmp_path):
    for name, docs in (("b.jsonl.zst", DOCS[1:]), ("a.jsonl.gz", DOCS[:1])):
        write_file(tmp_path / name, jsonl(docs))
    (tmp_path / "notes.md").write_text("not data")
    streamed = load_local_files(str(tmp_path))
    assert streamed.n_shards == 2
    assert [row["text"] for row in streamed] == DOCS
    assert [row["text"] for row in load_local_files(str(tmp_path / "*.jsonl.zst"))] == DOCS[1:]


def test_local_files_errors_name_the_key(tmp_path):
    with pytest.raises(LETConfigError, match="dataset_path=.*no .jsonl.zst/.jsonl.gz/.*files there"):
        load_local_files(str(tmp_path))  # an empty folder
    with pytest.raises(LETConfigError, match="no such file or folder"):
        load_local_files(str(tmp_path / "missing"))
    with pytest.raises(LETConfigError, match="name a file, folder or glob"):
        load_local_files("")  # local_files with no dataset_path
    _write(tmp_path, "jsonl")
    _write(tmp_path, "txt")
    with pytest.raises(LETConfigError, match="mixes file types"):
        load_local_files(str(tmp_path))


def test_sample_corpus_feeds_torchtitan_dataloader(tokenizer):
    assert {"sample_corpus", "sample_corpus_validation", "local_files", "pile"} <= DATASETS.keys()
    dataset = HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, seq_len=64)
    batch, labels = next(iter(dataset))
    assert batch["input"].shape == labels.shape == (64,)
    assert batch["input"][0].item() == tokenizer.bos_id  # documents start with bos
    assert (batch["input"][1:] == labels[:-1]).all()


def _windows(dataset, count):
    iterator = iter(dataset)
    return torch.stack([next(iterator)[0]["input"] for _ in range(count)])


def _map_style_reference(tokenizer, file, dp_rank, dp_world_size, count):
    """The windows torchtitan cut before the datasets were streamed: datasets' map-style json, split by node."""
    dataset = HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, seq_len=64, infinite=True)
    dataset._data = split_dataset_by_node(load_dataset("json", data_files=[str(file)], split="train"),
                                          dp_rank, dp_world_size)
    return _windows(dataset, count)


@pytest.mark.parametrize("dp_world_size", [1, 2])
def test_sample_corpus_keeps_its_map_style_windows_on_1_and_2_ranks(tokenizer, dp_world_size):
    """The pinned debug runs read these windows: streaming would cut one file among 2 ranks every other document."""
    file = SAMPLE_CORPUS / "validation.jsonl"
    for rank in range(dp_world_size):
        dataset = HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, seq_len=64, dp_rank=rank,
                                         dp_world_size=dp_world_size, infinite=True)
        assert isinstance(dataset._data, Dataset)
        # 200 windows: past the end of a rank's half, so the re-loop is compared too
        assert torch.equal(_windows(dataset, 200), _map_style_reference(tokenizer, file, rank, dp_world_size, 200))


def test_streamed_local_files_give_the_map_style_windows_on_one_rank(tokenizer):
    """local_files streams now; a run on one rank (the replication's) reads exactly the windows it read before,
    through a re-loop."""
    file = SAMPLE_CORPUS / "validation.jsonl"
    streamed = HuggingFaceTextDataset("local_files", str(file), tokenizer, seq_len=64, infinite=True)
    assert isinstance(streamed._data, IterableDataset)
    assert torch.equal(_windows(streamed, 200), _map_style_reference(tokenizer, file, 0, 1, 200))


def test_a_local_pile_copy_streams_through_the_pile_entries(tmp_path, tokenizer, monkeypatch):
    train, validation = numbered_documents(40), numbered_documents(5, prefix="held out")
    root = write_pile(tmp_path / "pile", train, shards=4, validation=validation)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("a local copy went to the hub"))
    training = HuggingFaceTextDataset("pile", str(root), tokenizer, seq_len=32)
    assert isinstance(training._data, IterableDataset) and training._data.n_shards == 4
    assert sorted(row["text"] for row in training._data) == sorted(train)
    held_out = HuggingFaceTextDataset("pile_validation", str(root), tokenizer, seq_len=32)
    assert [row["text"] for row in held_out._data] == validation
    batch, labels = next(iter(training))
    assert batch["input"].shape == (32,) and (batch["input"][1:] == labels[:-1]).all()
    # the split's own file or folder will do as well; a local path that is not there is not asked of the hub
    assert [row["text"] for row in data.load_pile(str(root / "val.jsonl.zst"), "validation", "k")] == validation
    with pytest.raises(LETConfigError, match=f"training.dataset_path='{tmp_path}/gone': no such file or folder"):
        HuggingFaceTextDataset("pile", str(tmp_path / "gone"), tokenizer, seq_len=32)


def test_the_pile_names_its_split_files_since_datasets_infers_train_only(tmp_path, monkeypatch):
    """From `train/` beside `val.jsonl.zst` datasets infers a train split alone, so 'validation' must be named: the
    hub id is asked with the Pile's own file layout."""
    root = write_pile(tmp_path / "pile", numbered_documents(4), shards=2, validation=["v"])
    with pytest.raises(ValueError, match="Bad split: validation"):
        load_dataset(str(root), split="validation", streaming=True)
    named = load_dataset(str(root), data_files=PILE_FILES, split="validation", streaming=True)
    assert [row["text"] for row in named] == ["v"]
    asked = {}
    monkeypatch.setattr(data, "load_dataset", lambda path, **kwargs: asked.update(path=path, **kwargs))
    data.load_pile(PILE, "validation", "validation.dataset_path")
    assert asked == {"path": PILE, "data_files": PILE_FILES, "split": "validation", "streaming": True}
