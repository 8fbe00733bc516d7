"""Datasets for torchtitan's text dataloader: the bundled sample corpus, any local files, and The Pile.

Entries are added to torchtitan's own DATASETS table, so `training.dataset` / `validation.dataset` pick
them and torchtitan's tokenising, packing, sharding and checkpointing apply unchanged.
"""

from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset
from torchtitan.hf_datasets import DatasetConfig
from torchtitan.hf_datasets.text_datasets import DATASETS

from .config import LETConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = REPO_ROOT / "assets" / "sample_corpus"

# extension -> datasets' builder name
_BUILDERS = {".json": "json", ".jsonl": "json", ".txt": "text", ".parquet": "parquet"}


def load_local_files(path: str) -> Dataset:
    """A file, a folder of files or a glob of json/jsonl/txt/parquet; each record's "text" is one document.

    txt files are read one document per line (datasets' "text" builder).
    """
    target = Path(path)
    files = sorted(target.glob("*")) if target.is_dir() else sorted(Path().glob(path)) if "*" in path else [target]
    files = [f for f in files if f.suffix in _BUILDERS]
    if not files:
        raise LETConfigError(
            f"training.dataset_path='{path}': no {'/'.join(sorted(_BUILDERS))} files there"
        )
    builders = {_BUILDERS[f.suffix] for f in files}
    if len(builders) > 1:
        raise LETConfigError(f"training.dataset_path='{path}': mixes file types {sorted(builders)}; use one type")
    return load_dataset(builders.pop(), data_files=[str(f) for f in files], split="train")


def _text(sample: dict[str, Any]) -> str:
    return sample["text"]


def _pile(split: str):
    def load(path: str):
        return load_dataset(path, split=split, streaming=True)

    return load


LET_DATASETS = {
    "sample_corpus": DatasetConfig(str(SAMPLE_CORPUS / "train.jsonl"), load_local_files, _text),
    "sample_corpus_validation": DatasetConfig(str(SAMPLE_CORPUS / "validation.jsonl"), load_local_files, _text),
    # set training.dataset_path (and validation.dataset_path) to your files
    "local_files": DatasetConfig("", load_local_files, _text),
    # The Pile without copyrighted subsets, streamed from the Hugging Face hub; point dataset_path at a local
    # copy (a folder of jsonl/parquet files) with dataset = "local_files" for offline clusters.
    "pile": DatasetConfig("monology/pile-uncopyrighted", _pile("train"), _text),
    "pile_validation": DatasetConfig("monology/pile-uncopyrighted", _pile("validation"), _text),
}


def register() -> None:
    """Add the entries to torchtitan's table (idempotent)."""
    for name, config in LET_DATASETS.items():
        DATASETS.setdefault(name, config)
