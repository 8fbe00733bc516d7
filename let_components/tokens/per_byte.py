"""Per-byte measurement: how many bytes of text each token id stands for, and LM loss per byte of text.

Two tokenizers' losses compare only per byte. `token_byte_lengths` is the one place that decides which tokenizers
have a per-id table (byte-level BPE, SentencePiece-style BPE with byte fallback, tiktoken), for everything that
counts bytes: the byte alignment (bytes_keys.py), the caught-up stop rule, the teacher's sanity check and the
bits-per-byte tools.
"""

import json
import math
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer, HuggingFaceTokenizer

from ..config import LETConfigError

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


def tokenizer_where(tokenizer: BaseTokenizer, key: str) -> str:
    path = getattr(tokenizer, "tokenizer_path", None)
    return f"{key}='{path}'" if path else key


METASPACE = "\u2581"
"""SentencePiece's '▁', written in a piece where the text has a space."""
BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")
"""A byte-fallback piece: one byte of a character the vocabulary does not hold (Gemma, Llama 2, Mistral)."""


def _components(component: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A tokenizer.json normalizer, pre-tokenizer or decoder as the list of its parts (inside Sequence ones)."""
    if not component:
        return []
    inner = component.get("normalizers") or component.get("pretokenizers") or component.get("decoders")
    if component.get("type") == "Sequence" and inner:
        return [part for c in inner for part in _components(c)]
    return [component]


def _component_types(component: dict[str, Any] | None) -> set[str]:
    return {part.get("type", "") for part in _components(component)}


def tokenizer_json(tokenizer: HuggingFaceTokenizer) -> dict[str, Any]:
    return json.loads(tokenizer.tokenizer.to_str())


def is_byte_level(spec: dict[str, Any]) -> bool:
    """A byte-level BPE: every vocabulary character stands for one byte (GPT-2's table)."""
    types = _component_types(spec.get("pre_tokenizer")) | _component_types(spec.get("decoder"))
    return spec["model"]["type"] == "BPE" and "ByteLevel" in types


def is_metaspace(spec: dict[str, Any]) -> bool:
    """A SentencePiece-style vocabulary: its decoder turns METASPACE back into a space (Gemma, Llama 2, Mistral)."""
    return any(
        part.get("type") == "Metaspace"
        or (part.get("type"), part.get("pattern"), part.get("content")) == ("Replace", {"String": METASPACE}, " ")
        for part in _components(spec.get("decoder"))
    )


ALIGNMENT = "cross-tokenizer alignment (let.token_alignment = 'bytes')"
"""What needs the bytes of every token, in token_byte_lengths' error line (the default)."""
SUPPORTED_TABLES = ("byte-level BPE and SentencePiece-style BPE ('\u2581' for a space, <0xNN> byte fallback) "
                    "tokenizer.json files and tiktoken files")


def _unknown_bytes(where: str, what: str, needed_by: str) -> LETConfigError:
    return LETConfigError(
        f"{where}: {what} does not say which bytes each token stands for, which {needed_by} needs: only "
        f"{SUPPORTED_TABLES} are supported"
    )


def _hf_byte_lengths(tokenizer: HuggingFaceTokenizer, where: str, needed_by: str) -> np.ndarray:
    spec = tokenizer_json(tokenizer)
    model = spec["model"]["type"]
    metaspace = model == "BPE" and is_metaspace(spec)
    if is_byte_level(spec):
        char_to_byte = {c: b for b, c in bytes_to_unicode().items()}

        def piece_bytes(token: str) -> int:
            return len(token) if all(c in char_to_byte for c in token) else -1  # one character per byte
    elif metaspace:
        byte_fallback = bool(spec["model"].get("byte_fallback"))

        def piece_bytes(token: str) -> int:
            if byte_fallback and BYTE_PIECE.fullmatch(token):
                return 1
            return len(token.replace(METASPACE, " ").encode("utf-8"))
    else:
        raise _unknown_bytes(where, f"a {model} tokenizer without a ByteLevel or '\u2581' decoder", needed_by)
    vocab = tokenizer.tokenizer.get_vocab(with_added_tokens=False)
    added = tokenizer.tokenizer.get_added_tokens_decoder()
    lengths = np.full(max([*vocab.values(), *added, -1]) + 1, -1, dtype=np.int64)
    for token, i in vocab.items():
        lengths[i] = piece_bytes(token)
    # an added token is matched in the raw text (after the normalizer if `normalized`): it covers its content's bytes
    for i, token in added.items():
        content = token.content.replace(METASPACE, " ") if metaspace and token.normalized else token.content
        lengths[i] = len(content.encode("utf-8"))
    for probe in PROBES:  # a prefix space or a normalizer would make a document's count differ from its bytes
        ids = text_ids(tokenizer, probe)
        if lengths[ids].min(initial=0) < 0 or lengths[ids].sum() != len(probe.encode("utf-8")):
            raise LETConfigError(
                f"{where}: its tokens do not cover the text byte for byte (a normalizer or a prefix space changes "
                f"it), which {needed_by} needs per token: only {SUPPORTED_TABLES} that keep the text are supported"
            )
    return lengths


def token_byte_lengths(tokenizer: BaseTokenizer, key: str, needed_by: str = ALIGNMENT) -> np.ndarray:
    """id -> number of text bytes the token covers when the tokenizer emits it for text (-1: unknown).

    The per-id table of byte-level BPE, SentencePiece-style BPE ('▁' = a space, <0xNN> = one byte) and tiktoken,
    checked on probe text; a tokenizer that adds a prefix space (Llama 2, Mistral) has none: its first token of a
    document stands for one byte more than the text holds. `key` is the config key the tokenizer came from and
    `needed_by` what asks for the bytes: the error of a tokenizer that cannot say them names both.
    """
    lengths = getattr(tokenizer, "_let_byte_lengths", None)
    if lengths is None:  # built once per tokenizer object: every per-byte measurement of a run shares it
        lengths = _byte_lengths(tokenizer, key, needed_by)
        tokenizer._let_byte_lengths = lengths
    return lengths.copy()


def _byte_lengths(tokenizer: BaseTokenizer, key: str, needed_by: str) -> np.ndarray:
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
        return _hf_byte_lengths(tokenizer, tokenizer_where(tokenizer, key), needed_by)
    raise _unknown_bytes(tokenizer_where(tokenizer, key), f"a {type(tokenizer).__name__}", needed_by)


def text_ids(tokenizer: BaseTokenizer, text: str) -> list[int]:
    """The tokens of `text` alone, without anything a post-processor or the wrapper adds around it."""
    if isinstance(tokenizer, HuggingFaceTokenizer):
        return tokenizer.tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer.encode(text, add_bos=False, add_eos=False)




def text_byte_lengths(tokenizer: BaseTokenizer, key: str, needed_by: str = "bits per byte") -> np.ndarray:
    """id -> bytes of text the token stands for, 0 for special tokens (BOS, EOS and the tokenizer's other special
    ids, which cover no text) and for ids whose bytes are unknown: the denominator of bits per byte."""
    lengths = np.maximum(token_byte_lengths(tokenizer, key, needed_by), 0)
    if isinstance(tokenizer, HuggingFaceTokenizer):
        special = [i for i, token in tokenizer.tokenizer.get_added_tokens_decoder().items() if token.special]
    else:
        special = list(getattr(tokenizer, "special_tokens", {}).values())
    special += [i for i in (tokenizer.bos_id, tokenizer.eos_id) if i is not None]
    lengths[[i for i in special if i < len(lengths)]] = 0
    return lengths


def lm_loss_sums(logits: torch.Tensor, labels: torch.Tensor, byte_lengths: torch.Tensor | None,
                 label_bytes: torch.Tensor | None = None) -> torch.Tensor:
    """[CE SUM in nats, UTF-8 bytes, tokens] over the predicted tokens that stand for text: labels that are not
    IGNORE_INDEX and cover at least one byte (special tokens are in neither sum). The bytes of each label: read off
    the text where the data pipeline knows them (`label_bytes`, labels' shape: the byte alignment measures every
    token's bytes, which a per-id table cannot always say - a literal U+2581 and a space are one SentencePiece
    piece), else from the tokenizer's table (`byte_lengths`: text_byte_lengths on the logits' device). One function
    for every per-byte comparison of two tokenizers."""
    valid = labels != IGNORE_INDEX
    n_bytes = (label_bytes if label_bytes is not None else byte_lengths[labels.clamp(min=0)]) * valid
    counted = n_bytes > 0
    ce = F.cross_entropy(logits.float().flatten(0, -2), labels.flatten().clamp(min=0), reduction="none")
    return torch.stack([(ce * counted.flatten()).sum(), n_bytes.sum().float(), counted.sum().float()])


def bits_per_byte(nats: float, n_bytes: float) -> float:
    """Bits per UTF-8 byte of text from a CE sum in nats (lm_loss_sums): comparable across tokenizers."""
    return nats / (math.log(2) * n_bytes)
