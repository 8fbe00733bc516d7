"""Cross-tokenizer LET: which teacher token each student position is aligned with, found by byte offsets.

The student and the teacher read the same documents, each in its own tokenization. Every token gets a span in one
global byte stream, written as integer keys so that one numpy `searchsorted` does the alignment:

- documents are numbered in the order the dataset reads them; document d starts at byte
  base_d = sum over earlier documents of (UTF-8 length + 1), the +1 keeping documents apart;
- a text token covering bytes [a, b) of document d has start key (base_d + a) * 4 + 1 and end key (base_d + b) * 4 + 1;
- the BOS the tokenizer wrapper puts before a document covers no text: start = end key base_d * 4 + 0;
  the EOS after it: start = end key (base_d + len_d) * 4 + 2.

So the last text token of d < EOS of d < BOS of d + 1 < first text token of d + 1, and identical tokenizations get
identical keys. Only byte-level tokenizers (byte-level BPE tokenizer.json, tiktoken) say which bytes a token stands
for, so only those are supported.
"""

import json
import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer, HuggingFaceTokenizer

from .config import LETConfigError

BOS_KEY, TEXT_KEY, EOS_KEY = 0, 1, 2
"""Key offsets inside one byte: text tokens sit between the document's BOS and EOS."""
KEYS_PER_BYTE = 4

# Text the tokenizer wrapper must leave alone but for tokens put around it: multi-byte characters, whitespace runs,
# digits; NFC-stable, so a tokenizer's NFC normalizer (Qwen's) keeps its bytes.
PROBES = ("Byte probe: caf\u00e9 Gr\u00fc\u00dfe \u6f22\u5b57 \U0001f642\n\t  42 end.", "A")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from byte to the printable character a byte-level BPE vocabulary writes it as."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


def _where(tokenizer: BaseTokenizer, key: str) -> str:
    path = getattr(tokenizer, "tokenizer_path", None)
    return f"{key}='{path}'" if path else key


def _component_types(component: dict[str, Any] | None) -> set[str]:
    """Types of a tokenizer.json pre-tokenizer or decoder, looking inside Sequence ones."""
    if not component:
        return set()
    inner = component.get("pretokenizers") or component.get("decoders")
    if component.get("type") == "Sequence" and inner:
        return set().union(*(_component_types(c) for c in inner))
    return {component.get("type", "")}


def _hf_byte_lengths(tokenizer: HuggingFaceTokenizer, where: str) -> np.ndarray:
    spec = json.loads(tokenizer.tokenizer.to_str())
    model = spec["model"]["type"]
    byte_level = "ByteLevel" in _component_types(spec.get("pre_tokenizer")) | _component_types(spec.get("decoder"))
    if model != "BPE" or not byte_level:
        raise LETConfigError(
            f"{where}: a {model} tokenizer without a ByteLevel pre-tokenizer or decoder; cross-tokenizer alignment "
            "needs the bytes of every token: only byte-level BPE tokenizer.json files and tiktoken files are supported"
        )
    char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
    vocab = tokenizer.tokenizer.get_vocab(with_added_tokens=False)
    added = tokenizer.tokenizer.get_added_tokens_decoder()
    lengths = np.full(max([*vocab.values(), *added, -1]) + 1, -1, dtype=np.int64)
    for token, i in vocab.items():
        if all(c in char_to_byte for c in token):
            lengths[i] = len(token)  # one character per byte
    # an added token is matched in the raw text, before the byte-level mapping: it covers its content's bytes
    for i, token in added.items():
        lengths[i] = len(token.content.encode("utf-8"))
    return lengths


def token_byte_lengths(tokenizer: BaseTokenizer, key: str) -> np.ndarray:
    """id -> number of text bytes the token covers when the tokenizer emits it for text (-1: unknown).

    `key` is the config key the tokenizer came from; errors name it.
    """
    import tiktoken

    encoding = getattr(tokenizer, "model", None)
    if isinstance(encoding, tiktoken.Encoding):
        lengths = np.full(encoding.n_vocab, -1, dtype=np.int64)
        for i in range(encoding.n_vocab):
            try:
                lengths[i] = len(encoding.decode_single_token_bytes(i))
            except KeyError:  # a hole in the ranks
                pass
        return lengths
    if isinstance(tokenizer, HuggingFaceTokenizer):
        return _hf_byte_lengths(tokenizer, _where(tokenizer, key))
    raise LETConfigError(
        f"{_where(tokenizer, key)}: a {type(tokenizer).__name__}; cross-tokenizer alignment needs the bytes of every "
        "token: only byte-level BPE tokenizer.json files and tiktoken files are supported"
    )


def _text_ids(tokenizer: BaseTokenizer, text: str) -> list[int]:
    """The tokens of `text` alone, without anything a post-processor or the wrapper adds around it."""
    if isinstance(tokenizer, HuggingFaceTokenizer):
        return tokenizer.tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer.encode(text, add_bos=False, add_eos=False)


def _wrapper_tokens(tokenizer: BaseTokenizer, lengths: np.ndarray, where: str) -> tuple[list[int], list[int]]:
    """(prefix, suffix): the tokens `encode(text, add_bos=True, add_eos=True)` puts around every text's tokens.

    Found by position, not by id: a document may contain the literal string of its tokenizer's BOS or EOS, which is
    then text. Together they are what the wrapper returns for "", split where the probes say.
    """
    empty = tokenizer.encode("", add_bos=True, add_eos=True)
    splits = set(range(len(empty) + 1))
    for probe in PROBES:
        text = _text_ids(tokenizer, probe)
        full = tokenizer.encode(probe, add_bos=True, add_eos=True)
        splits &= {p for p in splits if full == empty[:p] + text + empty[p:]}
        if lengths[text].min(initial=0) < 0 or lengths[text].sum() != len(probe.encode("utf-8")):
            raise LETConfigError(
                f"{where}: its tokens do not cover the text byte for byte (a normalizer or a prefix space changes "
                "it); cross-tokenizer alignment supports byte-level BPE tokenizer.json files and tiktoken files"
            )
    if len(splits) != 1:
        raise LETConfigError(
            f"{where}: its post-processor does more than put fixed tokens before and after the text; "
            "cross-tokenizer alignment cannot tell its special tokens from the text's"
        )
    p = splits.pop()
    return empty[:p], empty[p:]


@dataclass(frozen=True)
class ByteTokenizer:
    """A tokenizer together with the bytes its tokens cover: built once per tokenizer, checked on probe text."""

    tokenizer: BaseTokenizer
    byte_lengths: np.ndarray
    """id -> bytes of text covered (-1: unknown)."""
    prefix: list[int]
    """Tokens the wrapper puts before every document (BOS): they cover no text."""
    suffix: list[int]
    """Tokens the wrapper puts after every document (EOS)."""

    @classmethod
    def build(cls, tokenizer: BaseTokenizer, key: str) -> "ByteTokenizer":
        lengths = token_byte_lengths(tokenizer, key)
        return cls(tokenizer, lengths, *_wrapper_tokens(tokenizer, lengths, _where(tokenizer, key)))

    def encode(self, text: str) -> list[int]:
        """Exactly the call torchtitan's HuggingFaceTextDataset makes, so the ids are the dataset's."""
        return self.tokenizer.encode(text, add_bos=True, add_eos=True)


@dataclass(frozen=True)
class KeyedTokens:
    """Tokens in stream order with their byte-stream keys (see the module docstring); all arrays are [n]."""

    ids: np.ndarray
    start: np.ndarray
    end: np.ndarray
    doc: np.ndarray
    valid: np.ndarray
    """False: the token's document was not tokenized byte for byte on both sides, so it takes part in no pair."""

    @classmethod
    def empty(cls) -> "KeyedTokens":
        return cls.unkeyed([])

    @classmethod
    def unkeyed(cls, ids: list[int]) -> "KeyedTokens":
        """Tokens read before the key stream began: doc and keys -1, below every key of it, and no targets."""
        minus = np.full(len(ids), -1, dtype=np.int64)
        return cls(np.asarray(ids, dtype=np.int64), minus, minus, minus, np.zeros(len(ids), dtype=bool))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: slice) -> "KeyedTokens":
        return KeyedTokens(self.ids[index], self.start[index], self.end[index], self.doc[index], self.valid[index])

    @classmethod
    def concat(cls, parts: list["KeyedTokens"]) -> "KeyedTokens":
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def without_targets(self) -> "KeyedTokens":
        return replace(self, valid=np.zeros(len(self), dtype=bool))

    def state_dict(self) -> dict[str, list[int]]:
        """Plain lists, for torchtitan's checkpoint."""
        return {f.name: getattr(self, f.name).astype(np.int64).tolist() for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[int]]) -> "KeyedTokens":
        arrays = {f.name: np.asarray(state[f.name], dtype=np.int64) for f in fields(cls)}
        return cls(**{**arrays, "valid": arrays["valid"].astype(bool)})


def document_tokens(tokenizer: ByteTokenizer, text: str, doc: int, base: int) -> tuple[KeyedTokens, bool]:
    """One document's `encode(text, add_bos=True, add_eos=True)` with its keys, and whether its text tokens cover
    the text byte for byte.

    Where they do not (a normalizer changed the text), the keys are clipped into the document so the stream stays
    ordered, and the caller must keep the document out of every pair.
    """
    ids = tokenizer.encode(text)
    n, p, s = len(ids), len(tokenizer.prefix), len(tokenizer.suffix)
    n_bytes = len(text.encode("utf-8"))
    wrapped = n >= p + s and ids[:p] == tokenizer.prefix and ids[n - s:] == tokenizer.suffix
    if not wrapped:
        p = s = 0
    array = np.asarray(ids, dtype=np.int64)
    lengths = tokenizer.byte_lengths[array[p:n - s]]
    covers = wrapped and lengths.min(initial=0) >= 0 and int(lengths.sum()) == n_bytes
    ends = np.minimum(np.cumsum(np.maximum(lengths, 0)), n_bytes)
    starts = np.concatenate([[0], ends[:-1]])
    start = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    start[:p] = end[:p] = base * KEYS_PER_BYTE + BOS_KEY
    start[p:n - s] = (base + starts) * KEYS_PER_BYTE + TEXT_KEY
    end[p:n - s] = (base + ends) * KEYS_PER_BYTE + TEXT_KEY
    start[n - s:] = end[n - s:] = (base + n_bytes) * KEYS_PER_BYTE + EOS_KEY
    tokens = KeyedTokens(array, start, end, np.full(n, doc, dtype=np.int64), np.ones(n, dtype=bool))
    return tokens, covers


@dataclass(frozen=True)
class AlignedWindow:
    teacher_input: np.ndarray
    """[teacher_len] the teacher's tokens of the window, padded at the end."""
    teacher_index: np.ndarray
    """[S] per student position, its teacher token's position in teacher_input (-1: no target)."""
    lost: int
    """Student positions whose teacher token fell beyond teacher_len."""
    length: int
    """Teacher tokens of the window in teacher_input (the rest is padding)."""


def align_window(
    student: KeyedTokens, teacher: KeyedTokens, teacher_len: int, pad_id: int, same_document: bool
) -> AlignedWindow:
    """Pair one student window (its S input tokens) with the teacher's tokens of the same text.

    The teacher window is the teacher's tokens that start at or after the student's first token and end at or before
    its last, in stream order; student position j is aligned with the last of them that ends at or before s_j ends:
    the teacher has then read the same text, or the longest whole-token prefix of it that starts inside the window.
    No such token, or (same_document) one of another document, or one of a document not tokenized byte for byte:
    no target (-1). The teacher window keeps its first teacher_len tokens; positions aligned past them are counted.

    `teacher` is the teacher's stream around the window (at least every token that can be in it), ordered by keys.
    """
    index = np.full(len(student), -1, dtype=np.int64)
    teacher_input = np.full(teacher_len, pad_id, dtype=np.int64)
    if len(teacher) == 0:
        return AlignedWindow(teacher_input, index, 0, 0)
    first = int(np.searchsorted(teacher.start, student.start[0], side="left"))
    stop = max(first, int(np.searchsorted(teacher.end, student.end[-1], side="right")))
    kept = min(stop - first, teacher_len)
    teacher_input[:kept] = teacher.ids[first:first + kept]
    last = np.searchsorted(teacher.end, student.end, side="right") - 1
    safe = np.maximum(last, 0)
    has_target = (last >= first) & student.valid & teacher.valid[safe]
    if same_document:
        has_target &= teacher.doc[safe] == student.doc
    index[has_target] = last[has_target] - first
    truncated = index >= teacher_len
    index[truncated] = -1
    return AlignedWindow(teacher_input, index, int(truncated.sum()), kept)


def text_byte_lengths(tokenizer: BaseTokenizer, key: str) -> np.ndarray:
    """id -> bytes of text the token stands for, 0 for special tokens (BOS, EOS and the tokenizer's other special
    ids, which cover no text) and for ids whose bytes are unknown: the denominator of bits per byte."""
    lengths = np.maximum(token_byte_lengths(tokenizer, key), 0)
    if isinstance(tokenizer, HuggingFaceTokenizer):
        special = [i for i, token in tokenizer.tokenizer.get_added_tokens_decoder().items() if token.special]
    else:
        special = list(getattr(tokenizer, "special_tokens", {}).values())
    special += [i for i in (tokenizer.bos_id, tokenizer.eos_id) if i is not None]
    lengths[[i for i in special if i < len(lengths)]] = 0
    return lengths


def lm_loss_sums(logits: torch.Tensor, labels: torch.Tensor, byte_lengths: torch.Tensor) -> torch.Tensor:
    """[CE SUM in nats, UTF-8 bytes, tokens] over the predicted tokens that stand for text: labels that are not
    IGNORE_INDEX and cover at least one byte (special tokens are in neither sum). `byte_lengths`: text_byte_lengths
    as a tensor on the logits' device. One function for every per-byte comparison of two tokenizers."""
    valid = labels != IGNORE_INDEX
    n_bytes = byte_lengths[labels.clamp(min=0)] * valid
    counted = n_bytes > 0
    ce = F.cross_entropy(logits.float().flatten(0, -2), labels.flatten().clamp(min=0), reduction="none")
    return torch.stack([(ce * counted.flatten()).sum(), n_bytes.sum().float(), counted.sum().float()])


def bits_per_byte(nats: float, n_bytes: float) -> float:
    """Bits per UTF-8 byte of text from a CE sum in nats (lm_loss_sums): comparable across tokenizers."""
    return nats / (math.log(2) * n_bytes)
