"""Text data in miniature for the tests: numbered documents in jsonl shards (plain, .gz, .zst) and a copy of The
Pile's layout (train/00.jsonl.zst ..., val.jsonl.zst, test.jsonl.zst)."""

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import zstandard


def numbered_documents(count: int, prefix: str = "doc") -> list[str]:
    """Distinct documents of different lengths (several windows of a short seq_len between them)."""
    return [f"{prefix} {i}: " + " ".join(f"word{(i * 7 + j) % 50}" for j in range(5 + i % 13)) for i in range(count)]


def jsonl(documents: Sequence[str], **extra: object) -> bytes:
    return "".join(json.dumps({"text": d, **extra}) + "\n" for d in documents).encode()


def write_file(path: Path, data: bytes, frames: int = 1) -> Path:
    """data as the file's name says (.zst: `frames` zstd frames one after the other, as pzstd writes; .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".zst"):
        step = -(-len(data) // frames)
        data = b"".join(zstandard.ZstdCompressor().compress(data[i:i + step]) for i in range(0, len(data), step))
    elif path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_shards(folder: Path, documents: Sequence[str], shards: int, suffix: str = ".jsonl.zst") -> list[Path]:
    """The documents dealt round-robin into `shards` files 00, 01, ... (document i in shard i % shards)."""
    return [write_file(folder / f"{s:02d}{suffix}", jsonl(documents[s::shards], meta={"pile_set_name": "test"}))
            for s in range(shards)]


def write_pile(root: Path, train: Sequence[str], shards: int, validation: Sequence[str]) -> Path:
    """The Pile's own layout in miniature (plus the README a hub download brings)."""
    write_shards(root / "train", train, shards)
    write_file(root / "val.jsonl.zst", jsonl(validation))
    write_file(root / "test.jsonl.zst", jsonl(["a test document"]))
    (root / "README.md").write_text("the pile, in miniature\n")
    return root
