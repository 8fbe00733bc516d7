"""Datasets for torchtitan's text dataloader: the bundled sample corpus, any local files, and The Pile.

Entries are added to torchtitan's own DATASETS table, so `training.dataset` / `validation.dataset` pick them and
torchtitan's tokenising, packing, sharding and checkpointing apply unchanged. Local files and The Pile stream (an
IterableDataset, one shard per file: a data-parallel rank reads only its own files when their count divides among
the ranks); the bundled sample corpus stays map-style, so its windows on 1 and 2 ranks are those the pinned debug
runs were measured with. files.py reads the files, dataloader.py is the dataloader both token alignments use.
"""

from functools import partial
from pathlib import Path
from typing import Any

from datasets import Dataset, IterableDataset, load_dataset
from torchtitan.hf_datasets import DatasetConfig
from torchtitan.hf_datasets.text_datasets import DATASETS

from .files import DataError, data_files, documents, kind_of

__all__ = ["DataError", "load_local_files", "load_pile", "register"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = REPO_ROOT / "assets" / "sample_corpus"

PILE = "monology/pile-uncopyrighted"
PILE_FILES = {"train": "train/*.jsonl.zst", "validation": "val.jsonl.zst", "test": "test.jsonl.zst"}
"""The Pile's own layout, on the hub and in a local copy. Named explicitly: from a `train/` folder beside root-level
files datasets infers a train split only."""


def load_local_files(path: str, streaming: bool = True, key: str = "dataset_path") -> Dataset | IterableDataset:
    """A file, a folder of files or a glob of .jsonl.zst/.jsonl.gz/.jsonl/.json/.txt/.parquet; each record's "text"
    is one document (a txt file: one per line).

    streaming: read as the iteration goes, one shard per file, and nothing written to disk; False: datasets'
    map-style Dataset (an Arrow copy of every file in the cache, on every rank), what the bundled sample corpus keeps.
    key: the config key that set the path, for errors.
    """
    files = data_files(path, key)
    if streaming:
        return IterableDataset.from_generator(documents, gen_kwargs={"files": [str(f) for f in files]})
    return load_dataset(kind_of(files[0]), data_files=[str(f) for f in files], split="train")


def load_pile(path: str, split: str, key: str) -> IterableDataset:
    """The Pile streamed: from the hub (an id such as monology/pile-uncopyrighted), or from a local copy in the same
    layout (a folder with train/00.jsonl.zst ..., val.jsonl.zst, test.jsonl.zst; a split's file or folder itself
    will do), read as local files."""
    local = Path(path).expanduser()
    if local.exists() or path.startswith(("/", ".", "~")):
        split_path = local / PILE_FILES[split].removesuffix("/*.jsonl.zst")
        return load_local_files(str(split_path if split_path.exists() else local), key=key)
    # datasets reads the hub's .zst files through fsspec, which needs the zstandard package (a dependency)
    return load_dataset(path, data_files=PILE_FILES, split=split, streaming=True)


def _text(sample: dict[str, Any]) -> str:
    return sample["text"]


def _entry(path: str, loader: Any) -> DatasetConfig:
    return DatasetConfig(path, loader, _text)


LET_DATASETS = {
    # map-style: streamed, one file would be cut among 2 ranks by every 2nd document instead of in two halves,
    # and the pinned debug runs' windows would change
    "sample_corpus": _entry(str(SAMPLE_CORPUS / "train.jsonl"),
                            partial(load_local_files, streaming=False, key="training.dataset_path")),
    "sample_corpus_validation": _entry(str(SAMPLE_CORPUS / "validation.jsonl"),
                                       partial(load_local_files, streaming=False, key="validation.dataset_path")),
    # set training.dataset_path (and validation.dataset_path) to your files; one entry serves both keys
    "local_files": _entry("", partial(load_local_files, key="training/validation.dataset_path")),
    # The Pile without copyrighted subsets, streamed from the Hugging Face hub; a local copy in the same layout
    # when dataset_path points at it (docs/running.md#data)
    "pile": _entry(PILE, partial(load_pile, split="train", key="training.dataset_path")),
    "pile_validation": _entry(PILE, partial(load_pile, split="validation", key="validation.dataset_path")),
}


def register() -> None:
    """Add the entries to torchtitan's table (idempotent)."""
    for name, config in LET_DATASETS.items():
        DATASETS.setdefault(name, config)
