"""The shared training dataloader (let_components/data/dataloader.py) over streamed shards: each data-parallel rank
reads only its own files, a resumed rank continues where it stopped, and a checkpoint saved at another
data-parallel degree is refused in one line before it could repeat or skip data.

The ranks are built in one process, each with its dp_rank and dp_world_size, which is all that torchtitan's
dataset and datasets' split_dataset_by_node read of the process group; DCP saves the union of the ranks' states
(one `dataloader.dp_rank_<r>` entry each), as a multi-process save does.
"""

import copy
import logging
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torchtitan.components.tokenizer import HuggingFaceTokenizer
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

import let_components  # noqa: F401  (registers the datasets)
from let_components.config import LETConfigError
from let_components.data.dataloader import TextDataloader, check_resumable, saved_degree
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.data import numbered_documents, write_shards

DOCUMENTS = numbered_documents(120)
SEQ_LEN = 16


@pytest.fixture(scope="module")
def tokenizer():
    return HuggingFaceTokenizer(str(ASSETS / "tokenizer"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """8 zstd shards: 2 for each of 4 ranks."""
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, DOCUMENTS, shards=8)
    return folder


def _dataset(tokenizer, path, rank, world, infinite=False):
    return HuggingFaceTextDataset("local_files", str(path), tokenizer, SEQ_LEN, rank, world, infinite)


def _loader(tokenizer, path, rank, world, **kwargs):
    return TextDataloader(_dataset(tokenizer, path, rank, world, infinite=True), rank, world, batch_size=2, **kwargs)


def _inputs(iterator, count):
    return [next(iterator)[0]["input"] for _ in range(count)]


@pytest.mark.parametrize("shard_count", [8, 3])
def test_over_one_pass_4_ranks_read_disjoint_documents_that_are_all_of_them(tmp_path, tokenizer, shard_count):
    """8 shards: each rank reads only its 2 files; 3 shards: every rank reads all 3 and keeps every 4th document,
    which is also exactly once, at 4x the reading."""
    write_shards(tmp_path, DOCUMENTS, shards=shard_count)
    read = [[row["text"] for row in _dataset(tokenizer, tmp_path, rank, 4)._data] for rank in range(4)]
    assert sorted(sum(read, [])) == sorted(DOCUMENTS)  # together all of them, each once
    if shard_count == 8:  # whole files: rank r reads shards r and r + 4
        assert [sorted(r) for r in read] == [sorted(DOCUMENTS[r::8] + DOCUMENTS[r + 4::8]) for r in range(4)]


def test_a_stream_whose_shards_do_not_divide_among_the_ranks_warns_once_at_start(tmp_path, tokenizer, caplog):
    write_shards(tmp_path / "three", DOCUMENTS, shards=3)
    write_shards(tmp_path / "four", DOCUMENTS, shards=4)
    with caplog.at_level(logging.WARNING):
        for rank in range(4):
            _loader(tokenizer, tmp_path / "three", rank, 4)
        _loader(tokenizer, tmp_path / "four", 0, 4)
        _loader(tokenizer, tmp_path / "three", 0, 1)
    warnings = [r.getMessage() for r in caplog.records if "do not divide" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "its 3 shards do not divide among 4 data-parallel ranks" in warnings[0]
    assert "python -m recipes.assets.reshard_data --input DIR --out NEW_DIR --shards 4" in warnings[0]


def test_a_map_style_dataset_refuses_more_than_one_worker(tokenizer):
    dataset = HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, SEQ_LEN)
    with pytest.raises(LETConfigError, match="training.dataloader.num_workers=2: dataset 'sample_corpus_validation'"):
        TextDataloader(dataset, 0, 1, batch_size=2, num_workers=2)


def test_a_dataset_state_taken_mid_stream_continues_with_the_same_windows(shards, tokenizer):
    """Mid-shard (a resume skips into its shard) and across the shard boundary and the re-loop after it."""
    reference = _dataset(tokenizer, shards, 1, 4, infinite=True)
    windows = iter(reference)
    _inputs(windows, 7)
    state = copy.deepcopy(reference.state_dict())
    assert state["data"]["examples_iterable"]["shard_example_idx"] > 0  # inside a shard, not at a boundary
    expected = _inputs(windows, 60)
    resumed = _dataset(tokenizer, shards, 1, 4, infinite=True)
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(_inputs(iter(resumed), 60), expected, strict=True))


def _states_after(tokenizer, path, world, steps):
    """Each rank's dataloader state after `steps` batches, merged as DCP saves them; and each rank's next batch."""
    merged, following = {}, []
    for rank in range(world):
        loader = _loader(tokenizer, path, rank, world)
        batches = iter(loader)
        for _ in range(steps):
            next(batches)
        merged.update(loader.state_dict())
        following.append(next(batches)[0]["input"])
    return merged, following


def test_a_dataloader_state_resumes_at_the_same_degree(shards, tokenizer, tmp_path):
    state, following = _states_after(tokenizer, shards, 2, steps=3)
    dcp.save({"dataloader": state}, checkpoint_id=str(tmp_path / "step-3"))
    assert saved_degree(tmp_path / "step-3") == 2
    for rank in range(2):
        loader = _loader(tokenizer, shards, rank, 2)
        dcp.load({"dataloader": loader}, checkpoint_id=str(tmp_path / "step-3"))
        assert torch.equal(next(iter(loader))[0]["input"], following[rank])


def _job(tmp_path, *overrides):
    return parse_config("train_configs/let_debug.toml", "--job.dump_folder", str(tmp_path), "--checkpoint.enable",
                        *overrides)


def test_a_state_saved_by_2_data_parallel_ranks_is_refused_by_1_in_one_line(shards, tokenizer, tmp_path):
    state, _ = _states_after(tokenizer, shards, 2, steps=3)
    step = tmp_path / "checkpoint" / "step-3"
    dcp.save({"dataloader": state}, checkpoint_id=str(step))
    # before training, from the checkpoint's metadata: fewer ranks and more
    for degree in (1, 4):
        with pytest.raises(LETConfigError, match=f"data-parallel degree {degree} .* of 2 data-parallel ranks") as error:
            check_resumable(_job(tmp_path), degree)
        assert 'checkpoint.exclude_from_loading = ["dataloader"]' in str(error.value)
        assert "\n" not in str(error.value)
    check_resumable(_job(tmp_path), 2)
    check_resumable(_job(tmp_path, "--checkpoint.exclude_from_loading", "dataloader"), 1)  # restarted on purpose
    # and at load, where torchtitan would assert
    loader = _loader(tokenizer, shards, 0, 1)
    with pytest.raises(LETConfigError, match="data-parallel degree 1 .* of 2 data-parallel ranks"):
        dcp.load({"dataloader": loader}, checkpoint_id=str(step))


def test_a_map_style_position_is_refused_by_a_stream(tokenizer):
    """local_files saved a document index before it streamed: one line, not torchtitan's assertion."""
    map_style = TextDataloader(HuggingFaceTextDataset("sample_corpus_validation", None, tokenizer, SEQ_LEN), 0, 1,
                               batch_size=2)
    next(iter(map_style))
    streamed = _loader(tokenizer, ASSETS / "sample_corpus" / "validation.jsonl", 0, 1)
    state = map_style.state_dict()
    assert "sample_idx" in pickle.loads(state["dp_rank_0"])["dataset_state"]
    with pytest.raises(LETConfigError, match="holds a map-style data position, this run reads the dataset streamed"):
        streamed.load_state_dict(state)
