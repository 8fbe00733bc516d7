"""Cross-tokenizer LET: which teacher token each student position is aligned with, found by byte offsets.

The student and the teacher read the same documents, each in its own tokenization. Every token gets a span in one
global byte stream, written as integer keys so that one numpy `searchsorted` does the alignment:

- documents are numbered in the order the dataset reads them; document d starts at byte
  base_d = sum over earlier documents of (UTF-8 length + 1), the +1 keeping documents apart;
- a text token covering bytes [a, b) of document d has start key (base_d + a) * 4 + 2 and end key (base_d + b) * 4 + 2;
  one that covers no byte at a (a '▁' a normalizer put before a run of text) has start (base_d + a) * 4 + 1 and end
  (base_d + a) * 4 + 3: it sorts around the tokens that meet at a, so it neither starts a window that begins at a
  nor counts as read by a token that ends there;
- the BOS the tokenizer wrapper puts before a document covers no text: start = end key base_d * 4 + 0;
  the EOS after it: start = end key (base_d + len_d) * 4 + 3.

So the last text token of d < EOS of d < BOS of d + 1 < first text token of d + 1, and identical tokenizations get
identical keys. A token's bytes come from `ByteTokenizer.spans`, fed by the per-id table of byte-level BPE and
tiktoken, or by the offsets of any other tokenizer.json whose tokens cover every byte (SentencePiece-style BPE with
byte fallback as in Gemma, Llama 2 and Mistral). `token_byte_lengths` is the one place that decides which tokenizers
have a per-id table (per_byte.py).
"""

from dataclasses import dataclass, fields, replace

import numpy as np
from torchtitan.components.tokenizer import BaseTokenizer, HuggingFaceTokenizer

from ..config import LETConfigError
from .per_byte import (
    BYTE_PIECE,
    METASPACE,
    PROBES,
    is_byte_level,
    text_ids,
    token_byte_lengths,
    tokenizer_json,
    tokenizer_where,
)

BOS_KEY, TEXT_KEY, EOS_KEY = 0, 2, 3
"""Key offsets inside one byte: text tokens sit between the document's BOS and EOS."""
KEYS_PER_BYTE = 4


def _wrapper_tokens(tokenizer: BaseTokenizer, where: str) -> tuple[list[int], list[int]]:
    """(prefix, suffix): the tokens `encode(text, add_bos=True, add_eos=True)` puts around every text's tokens.

    Found by position, not by id: a document may contain the literal string of its tokenizer's BOS or EOS, which is
    then text. Together they are what the wrapper returns for "", split where the probes say.
    """
    empty = tokenizer.encode("", add_bos=True, add_eos=True)
    splits = set(range(len(empty) + 1))
    for probe in PROBES:
        text = text_ids(tokenizer, probe)
        full = tokenizer.encode(probe, add_bos=True, add_eos=True)
        splits &= {p for p in splits if full == empty[:p] + text + empty[p:]}
    if len(splits) != 1:
        raise LETConfigError(
            f"{where}: its post-processor does more than put fixed tokens before and after the text; "
            "cross-tokenizer alignment cannot tell its special tokens from the text's"
        )
    p = splits.pop()
    return empty[:p], empty[p:]


@dataclass(frozen=True)
class DocumentSpans:
    """One document's tokens, `encode(text, add_bos=True, add_eos=True)`, each with the UTF-8 bytes [start, end) of
    the text it stands for; the prefix (BOS) is at 0 and the suffix (EOS) at the text's end, covering nothing."""

    ids: np.ndarray
    start: np.ndarray
    end: np.ndarray
    n_prefix: int
    n_suffix: int
    covers: bool
    """The text tokens' spans are ordered and leave out no byte: the document can be paired."""


@dataclass(frozen=True)
class ByteTokenizer:
    """A tokenizer together with the bytes its tokens cover: built once per tokenizer, checked on probe text.

    The bytes come from one of two sources behind one interface (`spans`): the per-id table of byte-level BPE and
    tiktoken (a token stands for the same bytes wherever it is), or, for any other tokenizer.json (SentencePiece-style
    BPE with byte fallback), the offsets the tokenizers library gives each token of a document. Tokenizers whose
    tokens leave bytes out (WordPiece and other pre-tokenizers that drop whitespace) are refused: the byte-for-byte
    check is what catches a normalizer that changed the text.
    """

    tokenizer: BaseTokenizer
    byte_lengths: np.ndarray | None
    """id -> bytes of text covered (-1: unknown); None: spans from the tokenizer's offsets."""
    prefix: list[int]
    """Tokens the wrapper puts before every document (BOS): they cover no text."""
    suffix: list[int]
    """Tokens the wrapper puts after every document (EOS)."""
    byte_pieces: np.ndarray | None = None
    """Offsets only: id -> is a byte-fallback piece <0xNN> (one byte of the character its offsets name)."""
    space_id: int = -1
    """Offsets only: the id of the lone '▁' piece (-1: none)."""

    @classmethod
    def build(cls, tokenizer: BaseTokenizer, key: str) -> "ByteTokenizer":
        where = tokenizer_where(tokenizer, key)
        if isinstance(tokenizer, HuggingFaceTokenizer) and not is_byte_level(spec := tokenizer_json(tokenizer)):
            hf = tokenizer.tokenizer
            if hf.truncation or hf.padding:
                raise LETConfigError(
                    f"{where}: its tokenizer.json sets 'truncation' or 'padding'; cross-tokenizer alignment needs "
                    "each document's tokens whole: set both to null"
                )
            vocab = hf.get_vocab()
            pieces = np.zeros(max(vocab.values(), default=-1) + 1, dtype=bool)
            if spec["model"].get("byte_fallback"):
                pieces[[i for token, i in vocab.items() if BYTE_PIECE.fullmatch(token)]] = True
            byte_tokenizer = cls(tokenizer, None, *_wrapper_tokens(tokenizer, where), pieces,
                                 vocab.get(METASPACE, -1))
        else:
            byte_tokenizer = cls(tokenizer, token_byte_lengths(tokenizer, key), *_wrapper_tokens(tokenizer, where))
        for probe in PROBES:
            if not byte_tokenizer.spans(probe).covers:
                raise LETConfigError(
                    f"{where}: its tokens do not cover the text byte for byte (a normalizer, a prefix space or a "
                    "pre-tokenizer that drops whitespace changes it); cross-tokenizer alignment supports byte-level "
                    "BPE and tiktoken files, and tokenizer.json files whose offsets cover every byte "
                    "(SentencePiece-style BPE with byte fallback)"
                )
        return byte_tokenizer

    def encode(self, text: str) -> list[int]:
        """Exactly the call torchtitan's HuggingFaceTextDataset makes, so the ids are the dataset's."""
        return self.tokenizer.encode(text, add_bos=True, add_eos=True)

    def spans(self, text: str) -> DocumentSpans:
        """The document's tokens and the bytes of `text` each stands for."""
        raw = text.encode("utf-8")
        if self.byte_lengths is None:
            ids, start, end, covers = self._offset_spans(text, raw)
            p, s = len(self.prefix), len(self.suffix)
            ids = np.concatenate([np.asarray(self.prefix, dtype=np.int64), ids,
                                  np.asarray(self.suffix, dtype=np.int64)])
        else:
            ids = np.asarray(self.encode(text), dtype=np.int64)
            p, s = len(self.prefix), len(self.suffix)
            wrapped = len(ids) >= p + s and ids[:p].tolist() == self.prefix and (
                ids[len(ids) - s:].tolist() == self.suffix)
            if not wrapped:
                p = s = 0
            lengths = self.byte_lengths[ids[p:len(ids) - s]]
            covers = wrapped and lengths.min(initial=0) >= 0 and int(lengths.sum()) == len(raw)
            end = np.minimum(np.cumsum(np.maximum(lengths, 0)), len(raw))
            start = np.concatenate([[0], end])[:len(end)].astype(np.int64)
        zeros = np.zeros(p, dtype=np.int64)
        ends = np.full(s, len(raw), dtype=np.int64)
        return DocumentSpans(ids, np.concatenate([zeros, start, ends]), np.concatenate([zeros, end, ends]), p, s,
                             bool(covers))

    def _offset_spans(self, text: str, raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """(text ids, start, end, covers) from the tokenizers library's offsets, which count characters, not bytes.

        A character's byte-fallback pieces all carry its offsets: the k-th of them stands for its k-th byte. A lone
        '▁' whose next token starts at the same character was put there by a normalizer (a prefix space, Llama 2 and
        Mistral): it stands for no byte. Tokens that share a character otherwise (a normalizer turned one character
        into several) each keep all of it, so a teacher token never counts as having read less than it did.
        """
        encoding = self.tokenizer.tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        units = np.frombuffer(raw, dtype=np.uint8)
        char_byte = np.append(np.flatnonzero((units & 0xC0) != 0x80), len(raw))  # byte where each character starts
        a, b = char_byte[offsets[:, 0]], char_byte[offsets[:, 1]]
        n = len(ids)
        piece = self.byte_pieces[ids]
        same_run = np.zeros(n, dtype=bool)
        same_run[1:] = piece[1:] & piece[:-1] & (a[1:] == a[:-1]) & (b[1:] == b[:-1])
        k = np.arange(n) - np.maximum.accumulate(np.where(same_run, 0, np.arange(n)))
        start = np.where(piece, a + k, a)
        end = np.where(piece, a + k + 1, b)
        prefix_space = np.zeros(n, dtype=bool)
        prefix_space[:-1] = (ids[:-1] == self.space_id) & (a[:-1] == a[1:])
        end[prefix_space] = start[prefix_space]
        ordered = bool((np.diff(start) >= 0).all() and (np.diff(end) >= 0).all() and (end[piece] <= b[piece]).all())
        # no byte left out: ends only grow, so a gap would be a start past the previous end
        gap_start = np.concatenate([[0], end])
        gap_end = np.concatenate([start, [len(raw)]])
        return ids, start, end, ordered and bool((gap_end <= gap_start).all())


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
    the text byte for byte (ByteTokenizer.spans).

    Where they do not (a normalizer changed the text), the keys are clipped into the document so the stream stays
    ordered, and the caller must keep the document out of every pair.
    """
    spans = tokenizer.spans(text)
    n, p, s = len(spans.ids), spans.n_prefix, spans.n_suffix
    n_bytes = len(text.encode("utf-8"))
    # a text token that stands for no byte sorts around the tokens that meet where it is (module docstring), so
    # identical tokenizers still pair position j with position j
    empty = spans.end == spans.start
    # 4 keys per byte so that one order sorts every kind of token of both tokenizers: BOS (+0) before any text of its
    # document, text tokens at +2, an empty token straddling +2 (+1 .. +3) so it neither starts a window that begins
    # at its byte nor counts as read by a token that ends there, EOS (+3) after the last text byte; documents are
    # one byte apart (base), so EOS of d < BOS of d + 1 whatever the tokenizers do at the seam
    start = (base + spans.start) * KEYS_PER_BYTE + TEXT_KEY - empty
    end = (base + spans.end) * KEYS_PER_BYTE + TEXT_KEY + empty
    start[:p] = end[:p] = base * KEYS_PER_BYTE + BOS_KEY
    start[n - s:] = end[n - s:] = (base + n_bytes) * KEYS_PER_BYTE + EOS_KEY
    tokens = KeyedTokens(spans.ids, start, end, np.full(n, doc, dtype=np.int64), np.ones(n, dtype=bool))
    return tokens, spans.covers


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
    head: int
    """Tokens put before the window's text (the BOS `bos` inserted in a window that starts inside a document)."""
    teacher_bytes: np.ndarray
    """[teacher_len] the bytes of text each token of teacher_input stands for, read off its keys (0: a token put
    before the text, padding, BOS/EOS, and every token of a document not tokenized byte for byte)."""


def align_window(
    student: KeyedTokens, teacher: KeyedTokens, teacher_len: int, pad_id: int, same_document: bool,
    bos: list[int] | tuple[int, ...] = (),
) -> AlignedWindow:
    """Pair one student window (its S input tokens) with the teacher's tokens of the same text.

    The teacher window is the teacher's tokens that start at or after the student's first token and end at or before
    its last, in stream order; student position j is aligned with the last of them that ends at or before s_j ends:
    the teacher has then read the same text, or the longest whole-token prefix of it that starts inside the window.
    No such token, or (same_document) one of another document, or one of a document not tokenized byte for byte:
    no target (-1). The teacher window keeps its first teacher_len tokens; positions aligned past them are counted.

    `bos`: tokens put first in every teacher window that does not already begin with them (a teacher that always
    read a BOS first, as Gemma did, sees one in windows that start inside a document); they are nobody's target.
    `teacher` is the teacher's stream around the window (at least every token that can be in it), ordered by keys.
    """
    index = np.full(len(student), -1, dtype=np.int64)
    teacher_input = np.full(teacher_len, pad_id, dtype=np.int64)
    first = int(np.searchsorted(teacher.start, student.start[0], side="left")) if len(teacher) else 0
    head = list(bos) if bos and teacher.ids[first:first + len(bos)].tolist() != list(bos) else []
    h = min(len(head), teacher_len)
    teacher_input[:h] = head[:h]
    if len(teacher) == 0:
        return AlignedWindow(teacher_input, index, 0, h, h, np.zeros(teacher_len, dtype=np.int64))
    stop = max(first, int(np.searchsorted(teacher.end, student.end[-1], side="right")))
    kept = min(stop - first, teacher_len - h)
    teacher_input[h:h + kept] = teacher.ids[first:first + kept]
    # the causal pairing: the LAST teacher token that ends at or before student token j ends, so the teacher's state
    # at it has read no byte beyond what the student has read at j (a later one would leak the student's future)
    last = np.searchsorted(teacher.end, student.end, side="right") - 1
    safe = np.maximum(last, 0)
    has_target = (last >= first) & student.valid & teacher.valid[safe]
    if same_document:
        has_target &= teacher.doc[safe] == student.doc
    index[has_target] = last[has_target] - first + h
    truncated = index >= teacher_len
    index[truncated] = -1
    teacher_bytes = np.zeros(teacher_len, dtype=np.int64)
    teacher_bytes[h:h + kept] = token_bytes(teacher[first:first + kept])
    return AlignedWindow(teacher_input, index, int(truncated.sum()), h + kept, h, teacher_bytes)


def token_bytes(tokens: KeyedTokens) -> np.ndarray:
    """The bytes of text each token stands for, from its keys (a text token spans 4 keys per byte; an empty one, a
    BOS or an EOS none); 0 for a token of a document not tokenized byte for byte, whose spans are not the text's."""
    return np.maximum((tokens.end - tokens.start) // KEYS_PER_BYTE, 0) * tokens.valid
