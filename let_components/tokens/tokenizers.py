"""Tokenizers: from tokenizer.json (HF) or a tiktoken BPE file (Llama 3); the student's, and the teacher's own.

Which one the student trains in is the token alignment's business (same.py: the teacher's; bytes_aligned.py: its
own). Where the teacher's comes from is its source's (teacher/source.py), which reads it with `read_tokenizer_once`:
the data pipeline, the token map, the stop rule and the teacher's sanity check share it and its byte table.
"""

import functools
import os
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from torchtitan.components.tokenizer import BaseTokenizer, HuggingFaceTokenizer
from torchtitan.config import JobConfig
from torchtitan.config.job_config import Model

from ..config import LETConfigError, once

if TYPE_CHECKING:
    from . import TeacherSide

# Llama 3's pre-tokenisation regex (from its tokenizer.py) and its count of reserved special tokens.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_NUM_SPECIAL = 256
TIKTOKEN_FILES = ("tokenizer.model", "original/tokenizer.model")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", *TIKTOKEN_FILES)
TITAN_DEFAULT_ASSETS = next(f.default for f in fields(Model) if f.name == "hf_assets_path")
"""torchtitan's default model.hf_assets_path: left there, the student's tokenizer is the teacher folder's."""


class TiktokenTokenizer(BaseTokenizer):
    """A tiktoken-format BPE file (`<base64 token> <rank>` lines) with Llama 3's special-token layout.

    Special tokens follow the ranks: id n is <|begin_of_text|> (bos), n + 1 <|end_of_text|> (eos), then
    reserved ones up to n + 256, as in Llama 3's own tokenizer.
    """

    def __init__(self, model_file: str | os.PathLike):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        super().__init__()
        ranks = load_tiktoken_bpe(str(model_file))
        n = len(ranks)
        names = ["<|begin_of_text|>", "<|end_of_text|>"]
        names += [f"<|reserved_special_token_{i}|>" for i in range(LLAMA3_NUM_SPECIAL - len(names))]
        self.special_tokens = {name: n + i for i, name in enumerate(names)}
        self.model = tiktoken.Encoding(
            name=Path(model_file).name, pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
            special_tokens=self.special_tokens,
        )
        self.bos_id, self.eos_id = n, n + 1

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        ids = self.model.encode(text, disallowed_special=())
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: list[int]) -> str:
        return self.model.decode(ids)

    def get_vocab_size(self) -> int:
        return self.model.n_vocab

    def get_vocab(self) -> dict[str, int]:
        vocab = {token.decode("latin-1"): rank for token, rank in self.model._mergeable_ranks.items()}
        return {**vocab, **self.special_tokens}


def has_tokenizer(folder: str | os.PathLike) -> bool:
    return any((Path(folder) / name).is_file() for name in ("tokenizer.json", *TIKTOKEN_FILES))


def load_tokenizer(folder: str | os.PathLike, key: str = "model.hf_assets_path") -> BaseTokenizer:
    """tokenizer.json when present, else a tiktoken BPE file (tokenizer.model or original/tokenizer.model);
    `key` is the config key an error names."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        tokenizer = HuggingFaceTokenizer(str(folder))
        # GPT-2 style (Pythia, OPT): bos and eos are one string, and torchtitan then leaves eos_id unset.
        config = tokenizer.config or {}
        if tokenizer.eos_id is None and tokenizer.bos_id is not None and (
            tokenizer._get_token_from_config(config, "eos_token") == tokenizer.bos_token
        ):
            tokenizer.eos_id, tokenizer.eos_token = tokenizer.bos_id, tokenizer.bos_token
        return tokenizer
    for name in TIKTOKEN_FILES:
        if (folder / name).is_file():
            return TiktokenTokenizer(folder / name)
    raise LETConfigError(
        f"{key}='{folder}': no tokenizer.json, tokenizer.model or original/tokenizer.model there"
    )


def tokenizer_source(job_config: JobConfig, teacher: "TeacherSide | None") -> tuple[str, str]:
    """(folder, config key) of the student's tokenizer: an explicit model.hf_assets_path wins; left at torchtitan's
    default, the teacher's (its folder, or this job's copy once the folder is gone: `teacher.tokenizer_folder`).

    Only the tokenizer is redirected: torchtitan keeps model.hf_assets_path for HF checkpoint loading and saving.
    """
    assets = job_config.model.hf_assets_path
    if assets != TITAN_DEFAULT_ASSETS or teacher is None:
        return assets, "model.hf_assets_path"
    return teacher.tokenizer_folder()


def student_tokenizer(job_config: JobConfig, teacher: "TeacherSide | None") -> BaseTokenizer:
    """The student's tokenizer (`tokenizer_source`), read once per job config: the pre-start checks and torchtitan's
    build_tokenizer_fn get the same object."""
    return once(job_config, "student_tokenizer", lambda: load_tokenizer(*tokenizer_source(job_config, teacher)))


def _stamp(folder: str | os.PathLike) -> tuple:
    """What identifies a folder's tokenizer files as read: a rewritten file is read again."""
    files = [Path(folder) / name for name in TOKENIZER_FILES]
    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())


def read_tokenizer_once(folder: str, key: str) -> BaseTokenizer:
    """load_tokenizer, once per process, folder and file stamp: the teacher's tokenizer (and its byte table, kept
    on the object) is shared by the data pipeline, the token map, the stop rule and the sanity check."""
    return _read_once(str(folder), key, _stamp(folder))


@functools.cache
def _read_once(folder: str, key: str, stamp: tuple) -> BaseTokenizer:
    return load_tokenizer(folder, key)


def check_tokenizer_fits(tokenizer: BaseTokenizer, source: tuple[str, str], student_vocab_size: int) -> None:
    """Every id the student's tokenizer (read from `source`: folder, key) emits indexes the student's embedding."""
    folder, key = source
    if tokenizer.get_vocab_size() > student_vocab_size:
        raise LETConfigError(
            f"{key}='{folder}': tokenizer has {tokenizer.get_vocab_size()} ids but the student has "
            f"{student_vocab_size} embedding rows (the teacher's at let.teacher_path); train with the teacher's "
            "tokenizer (leave model.hf_assets_path unset), or keep this one with let.token_alignment = 'bytes'"
        )
