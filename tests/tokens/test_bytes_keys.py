"""Cross-tokenizer alignment by byte offsets (let_components.tokens: bytes_keys, bytes_data).

The map is checked against a slow reference written from the rule in words: each token's bytes are materialised
(from the tokenizer's own vocabulary, decoded with transformers' copy of GPT-2's byte table, or from the tiktoken
file the test wrote), positions are (document, phase, byte) tuples instead of integer keys, and the teacher window
and the aligned token are found by scanning lists.
"""

import json
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.hf_datasets import DatasetConfig
from torchtitan.hf_datasets.text_datasets import DATASETS, HuggingFaceTextDataset

import let_components  # noqa: F401  (registers the datasets)
from let_components.config import LETConfigError
from let_components.tokens.bytes_data import ByteAlignedTextDataset
from let_components.tokens.bytes_keys import ByteTokenizer
from let_components.tokens.per_byte import METASPACE, token_byte_lengths
from let_components.tokens.tokenizers import TiktokenTokenizer, load_tokenizer
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.tokenizers import (
    SENTENCEPIECE_STYLES,
    save_qwen_tokenizer,
    save_sentencepiece_tokenizer,
    save_tiktoken_file,
)

PAD = -5
"""teacher_input's padding in these tests: an id no tokenizer has, so padding is visible."""

# NFC-stable, so the Qwen-style tokenizer's NFC normalizer leaves every document's bytes as they are.
DOCS = [
    "The quick brown fox jumps over the lazy dog. The end of the first document.",
    "Accents: caf\u00e9, na\u00efve, Gr\u00fc\u00dfe, \u00e5ngstr\u00f6m; "
    "CJK: \u6f22\u5b57\u304b\u306a\u4ea4\u3058\u308a\u6587; "
    "emoji: \U0001f642\U0001f680\U0001f469\u200d\U0001f469\u200d\U0001f467.",
    "   whitespace   runs\n\n\t\tand digits 1234567890, 3.14159, 2024-06-01   \n",
    "A literal <|endoftext|> and <|end_of_text|> and <|begin_of_text|> inside a document, and <bos>, <s>.",
    "",
    "x",
    "Mixed \u4e2d\u6587 and English \u2014 \u201cquotes\u201d, \u00bd and \u00bc, then \U0001f642 again.",
    "def f(x):\n    return x ** 2  # a comment\n",
]
TIKTOKEN_MERGES = [b"th", b"he", b"the", b" t", b" the", b"in", b"ing", b"  ", b"12", b"\xc3\xa9", b"\xe6\xbc", b"mo"]
"""Beyond the 256 bytes: whole words, a whole 2-byte character and the first 2 bytes of a 3-byte one."""


def _load_documents(path: str) -> Dataset:
    return Dataset.from_list([{"text": text} for text in json.loads(Path(path).read_text())])


DATASETS.setdefault("let_test_documents", DatasetConfig("", _load_documents, lambda sample: sample["text"]))
DATASETS.setdefault("let_test_documents_streaming", DatasetConfig(
    "", lambda path: _load_documents(path).to_iterable_dataset(), lambda sample: sample["text"]))


def _byte_table() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


@dataclass
class Ref:
    """A tokenizer and what the test knows about it independently of the code under test."""

    tokenizer: object
    n_prefix: int
    """Tokens encode(..., add_bos=True, add_eos=True) puts before every document (BOS)..."""
    n_suffix: int
    """... and after it (EOS)."""
    token_bytes: Callable[[int], bytes]
    prefix_space: bool = False
    """The tokenizer may put a space before a run of text (Llama 2, Mistral) that stands for no byte of it."""


def _hf_ref(tokenizer, n_prefix: int, n_suffix: int) -> Ref:
    table, added = _byte_table(), tokenizer.tokenizer.get_added_tokens_decoder()

    def token_bytes(i: int) -> bytes:
        if i in added:
            return added[i].content.encode("utf-8")
        return bytes(table[c] for c in tokenizer.id_to_token(i))

    return Ref(tokenizer, n_prefix, n_suffix, token_bytes)


def _sentencepiece_ref(tokenizer, style: str) -> Ref:
    """A piece's bytes spelled out from the vocabulary: '\u2581' is a space, <0xNN> the byte NN, an added token its
    content (offsets play no part)."""
    added = tokenizer.tokenizer.get_added_tokens_decoder()

    def token_bytes(i: int) -> bytes:
        if i in added:
            return added[i].content.encode("utf-8")
        piece = tokenizer.id_to_token(i)
        byte = re.fullmatch(r"<0x([0-9A-F]{2})>", piece)
        return bytes([int(byte[1], 16)]) if byte else piece.replace("\u2581", " ").encode("utf-8")

    return Ref(tokenizer, 1, 1, token_bytes, prefix_space=style != "gemma")


def save_tiny_bpe(folder: Path) -> Path:
    """A 300-token byte-level BPE trained on DOCS whose post-processor puts BOS first (as Llama 3's does) and whose
    EOS comes from torchtitan's wrapper."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
    )
    tokenizer.train_from_iterator(DOCS * 3, trainer)
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}))
    return folder


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> dict[str, Ref]:
    root = tmp_path_factory.mktemp("tokenizers")
    tiktoken = load_tokenizer(save_tiktoken_file(root / "tiktoken" / "tokenizer.model", TIKTOKEN_MERGES).parent)
    assert isinstance(tiktoken, TiktokenTokenizer)
    specials = sorted(tiktoken.special_tokens, key=tiktoken.special_tokens.get)  # Llama 3's layout, after the ranks
    tiktoken_bytes = [bytes([b]) for b in range(256)] + TIKTOKEN_MERGES + [name.encode() for name in specials]
    sentencepiece = {style: _sentencepiece_ref(load_tokenizer(save_sentencepiece_tokenizer(root / style, style)), style)
                     for style in SENTENCEPIECE_STYLES}  # <bos> ... <eos> / <s> ... </s>
    return sentencepiece | {
        "project": _hf_ref(load_tokenizer(ASSETS / "tokenizer"), 1, 1),  # <|begin_of_text|> ... <|end_of_text|>
        "qwen": _hf_ref(load_tokenizer(save_qwen_tokenizer(root / "qwen")), 0, 1),  # ... <|endoftext|>
        "tiny": _hf_ref(load_tokenizer(save_tiny_bpe(root / "tiny")), 1, 1),
        "tiktoken": Ref(tiktoken, 1, 1, tiktoken_bytes.__getitem__),
    }


def _docs_file(tmp_path: Path, docs: list[str]) -> str:
    path = tmp_path / f"docs_{abs(hash(tuple(docs)))}.json"
    path.write_text(json.dumps(docs))
    return str(path)


def _aligned(path, student, teacher, seq_len, teacher_len, same_document, infinite=False,
             name="let_test_documents", teacher_bos=False) -> ByteAlignedTextDataset:
    return ByteAlignedTextDataset(
        name, path, student, seq_len, infinite=infinite, teacher_tokenizer=teacher, teacher_len=teacher_len,
        same_document=same_document, pad_id=PAD, teacher_bos=teacher_bos,
    )


# ---- the reference: the rule in words, with materialised byte spans -------------------------------------------

def ref_stream(ref: Ref, docs: list[str], invalid: frozenset[int] = frozenset()) -> list[tuple]:
    """(id, start, end, doc) per token of the documents in order. Positions are (doc, phase, byte): a BOS is
    (d, 0, 0), a text token spans (d, 1, first byte) to (d, 1, byte after it), an EOS is (d, 2, 0). Tuples order
    exactly as the rule's keys do. Tokens of `invalid` documents all get (d, 1, 0): only their document matters."""
    stream = []
    for d, text in enumerate(docs):
        ids = ref.tokenizer.encode(text, add_bos=True, add_eos=True)
        body_end = len(ids) - ref.n_suffix
        stream += [(i, (d, 0, 0), (d, 0, 0), d) for i in ids[:ref.n_prefix]]
        offset = 0
        pieces = [ref.token_bytes(i) for i in ids[ref.n_prefix:body_end]]
        if ref.prefix_space:
            added = ref.tokenizer.tokenizer.get_added_tokens_decoder()
            pieces = _without_added_spaces(pieces, [i in added for i in ids[ref.n_prefix:body_end]], text.encode())
        if d not in invalid:
            assert b"".join(pieces) == text.encode("utf-8")
        for i, piece in zip(ids[ref.n_prefix:body_end], pieces, strict=True):
            size = 0 if d in invalid else len(piece)
            # a token standing for no byte sorts around the tokens that meet where it is
            empty = 0.5 if size == 0 and d not in invalid else 0
            stream.append((i, (d, 1, offset - empty), (d, 1, offset + size + empty), d))
            offset += size
        stream += [(i, (d, 2, 0), (d, 2, 0), d) for i in ids[body_end:]]
    return stream


def _without_added_spaces(pieces: list[bytes], is_added: list[bool], text: bytes) -> list[bytes]:
    """A prefix-space tokenizer (Llama 2, Mistral) puts a space before a run of text (the text, or each run between
    added tokens): where a run's pieces spell one space more than its text, the first one's first byte is not text."""
    pieces, cursor, i = list(pieces), 0, 0
    while i < len(pieces):
        if is_added[i]:
            cursor, i = cursor + len(pieces[i]), i + 1
            continue
        j = next((k for k in range(i, len(pieces)) if is_added[k]), len(pieces))
        end = text.index(pieces[j], cursor) if j < len(pieces) else len(text)
        if b"".join(pieces[i:j]) == b" " + text[cursor:end]:
            pieces[i] = pieces[i][1:]
        cursor, i = end, j
    return pieces


def ref_windows(student: list[tuple], teacher: list[tuple], seq_len: int, teacher_len: int, same_document: bool,
                invalid: frozenset[int] = frozenset(), bos: tuple[int, ...] = ()) -> list[tuple]:
    """(input ids, teacher_input, teacher_index, lost) per packed window, by scanning. `bos`: put first in each
    teacher window that does not begin with it."""
    windows = []
    for w in range(len(student) // (seq_len + 1)):
        window = student[w * (seq_len + 1):][:seq_len]
        teacher_window = [t for t in teacher if t[1] >= window[0][1] and t[2] <= window[-1][2]]
        if bos and tuple(t[0] for t in teacher_window[:len(bos)]) != bos:
            teacher_window = [(i, None, None, None) for i in bos] + teacher_window  # nobody's target
        index, lost = [], 0
        for s in window:
            ends_before = [k for k, t in enumerate(teacher_window) if t[2] is not None and t[2] <= s[2]]
            k = ends_before[-1] if ends_before else -1
            if k >= 0 and (s[3] in invalid or teacher_window[k][3] in invalid
                           or (same_document and teacher_window[k][3] != s[3])):
                k = -1
            if k >= teacher_len:
                k, lost = -1, lost + 1
            index.append(k)
        teacher_input = [t[0] for t in teacher_window[:teacher_len]]
        windows.append(([s[0] for s in window], teacher_input + [PAD] * (teacher_len - len(teacher_input)), index,
                        lost))
    return windows


def _as_lists(sample) -> tuple:
    inputs, _ = sample
    return (inputs["input"].tolist(), inputs["teacher_input"].tolist(), inputs["teacher_index"].tolist(),
            int(inputs["teacher_lost"]))


# ---- tests ---------------------------------------------------------------------------------------------------------

def test_wrapper_tokens_are_found_by_position(refs):
    """BOS/EOS are what encode("") gives, split where probe texts say; a post-processor's BOS counts as the prefix."""
    assert refs["tiny"].tokenizer.hf_adds_bos  # its BOS comes from the tokenizer.json post-processor
    for name, ref in refs.items():
        byte_tokenizer = ByteTokenizer.build(ref.tokenizer, "model.hf_assets_path")
        expected = [ref.tokenizer.bos_id] * ref.n_prefix, [ref.tokenizer.eos_id] * ref.n_suffix
        assert (byte_tokenizer.prefix, byte_tokenizer.suffix) == expected, name


@pytest.mark.parametrize("name", ["project", "qwen", "tiny", "tiktoken", "gemma"])
def test_byte_length_table_matches_the_tokens_bytes(refs, name):
    ref = refs[name]
    lengths = token_byte_lengths(ref.tokenizer, "model.hf_assets_path")
    assert len(lengths) == ref.tokenizer.get_vocab_size()
    assert lengths.tolist() == [len(ref.token_bytes(i)) for i in range(len(lengths))]


def test_hand_made_documents_make_the_hard_windows(refs):
    """The packed windows of the map test start mid-document, mid-UTF-8-character and cross document boundaries
    (else that test would not pin them down)."""
    docs = DOCS * 2
    for name in ("project", "qwen", "tiny", "tiktoken"):
        stream = ref_stream(refs[name], docs)
        starts = [stream[w * (n + 1)] for n in (5, 16, 37) for w in range(len(stream) // (n + 1))]
        mid_character = [s for s in starts if s[1][1] == 1 and 0 < s[1][2] < len(docs[s[3]].encode())
                         and docs[s[3]].encode()[s[1][2]] & 0xC0 == 0x80]
        assert mid_character, name
        assert any(s[1][1] == 1 and s[1][2] > 0 for s in starts), name
        crossing = [w for w in range(len(stream) // 6) if stream[w * 6][3] != stream[w * 6 + 4][3]]
        assert crossing, name


def test_documents_exercise_byte_fallback_and_prefix_spaces(refs):
    """The SentencePiece-style tokenizers of the map test meet characters outside their vocabulary (one piece per
    byte) and, for Llama 2 / Mistral, put a '▁' before a run of text that stands for no byte (else that test would not
    pin them down)."""
    for style in SENTENCEPIECE_STYLES:
        ref = refs[style]
        byte_tokenizer = ByteTokenizer.build(ref.tokenizer, "let.teacher_path")
        spans = [byte_tokenizer.spans(text) for text in DOCS]
        pieces = [ref.tokenizer.id_to_token(int(i)) for s in spans for i in s.ids]
        assert sum(re.fullmatch(r"<0x[0-9A-F]{2}>", piece) is not None for piece in pieces) > 50, style
        empty = sum(int((s.start[1:-1] == s.end[1:-1]).sum()) for s in spans)
        assert (empty > 0) == ref.prefix_space, style


PAIRS = [("project", "qwen"), ("qwen", "project"), ("tiny", "tiktoken"), ("tiktoken", "qwen"), ("qwen", "tiny"),
         # offsets (SentencePiece-style BPE with byte fallback) against the per-id table, and against each other
         ("project", "gemma"), ("gemma", "qwen"), ("llama2", "tiktoken"), ("mistral", "project"), ("gemma", "llama2")]


@pytest.mark.parametrize("same_document", [False, True])
@pytest.mark.parametrize("seq_len", [5, 16, 37])
@pytest.mark.parametrize("pair", PAIRS, ids="-".join)
def test_map_matches_the_reference(refs, tmp_path, pair, seq_len, same_document):
    student, teacher = refs[pair[0]], refs[pair[1]]
    docs = DOCS * 2
    path = _docs_file(tmp_path, docs)
    student_stream, teacher_stream = ref_stream(student, docs), ref_stream(teacher, docs)
    lost = 0
    for teacher_len in (seq_len, seq_len // 2 + 1, 2 * seq_len):
        expected = ref_windows(student_stream, teacher_stream, seq_len, teacher_len, same_document)
        got = [_as_lists(sample) for sample in _aligned(path, student.tokenizer, teacher.tokenizer, seq_len,
                                                        teacher_len, same_document)]
        assert len(got) == len(expected) > 0
        for w, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g == e, f"window {w} (teacher_len {teacher_len}) differs"
        lost += sum(e[3] for e in expected)
    if pair == ("project", "qwen"):
        assert lost > 0  # the 512-token teacher needs more tokens than the 4096-token student: truncation counted


@pytest.mark.parametrize("name", ["project", "qwen", "tiny", "tiktoken", *SENTENCEPIECE_STYLES])
def test_identical_tokenizers_give_the_identity(refs, tmp_path, name):
    """Through the byte path (a second instance of the tokenizer): the teacher reads the student's ids, position j
    is aligned with position j, in every window, wherever it starts."""
    ref = refs[name]
    twin = load_tokenizer(ref.tokenizer.tokenizer_path) if hasattr(ref.tokenizer, "tokenizer_path") else ref.tokenizer
    path = _docs_file(tmp_path, DOCS * 2)
    for seq_len in (3, 8, 29):
        for same_document in (False, True):
            samples = list(_aligned(path, ref.tokenizer, twin, seq_len, seq_len, same_document))
            assert samples
            for inputs, _ in samples:
                assert inputs["teacher_input"].tolist() == inputs["input"].tolist()
                assert inputs["teacher_index"].tolist() == list(range(seq_len))
                assert int(inputs["teacher_lost"]) == 0


def test_dataloader_builder_mirrors_torchtitans(refs, tmp_path):
    from let_components.tokens.bytes_data import build_byte_aligned_dataloader

    path = _docs_file(tmp_path, DOCS * 3)
    job_config = parse_config(
        "train_configs/let_debug.toml", "--training.dataset", "let_test_documents", "--training.dataset_path", path,
        "--training.seq_len", "12", "--training.local_batch_size", "3",
    )
    student, teacher = refs["project"].tokenizer, refs["qwen"].tokenizer
    loader = build_byte_aligned_dataloader(1, 0, student, job_config, teacher_tokenizer=teacher, teacher_len=20,
                                           same_document=True)
    batches = iter(loader)
    inputs, labels = next(batches)
    assert {k: tuple(v.shape) for k, v in inputs.items()} == {
        "input": (3, 12), "teacher_input": (3, 20), "teacher_index": (3, 12), "teacher_lost": (3,),
        "teacher_length": (3,), "teacher_head": (3,), "teacher_bytes": (3, 20), "label_bytes": (3, 12)}
    assert labels.shape == (3, 12)
    state = loader.state_dict()
    expected = next(batches)
    resumed = build_byte_aligned_dataloader(1, 0, student, job_config, teacher_tokenizer=teacher, teacher_len=20,
                                            same_document=True)
    resumed.load_state_dict(state)
    got = next(iter(resumed))
    assert all((got[0][k] == expected[0][k]).all() for k in expected[0]) and (got[1] == expected[1]).all()


def test_the_switch_reaches_a_dataloader_worker(refs, tmp_path):
    """training.dataloader.num_workers = 1 moves the teacher side off the training step: the trainer's switch, made
    on its own copy of the dataset, must still stop the work in the worker process."""
    from let_components.tokens.bytes_data import build_byte_aligned_dataloader

    path = _docs_file(tmp_path, DOCS * 6)
    job_config = parse_config(
        "train_configs/let_debug.toml", "--training.dataset", "let_test_documents", "--training.dataset_path", path,
        "--training.seq_len", "12", "--training.local_batch_size", "2", "--training.dataloader.num_workers", "1",
        "--training.dataloader.prefetch_factor", "2",
    )
    loader = build_byte_aligned_dataloader(1, 0, refs["project"].tokenizer, job_config,
                                           teacher_tokenizer=refs["qwen"].tokenizer, teacher_len=20,
                                           same_document=False)
    batches = iter(loader)
    assert "teacher_input" in next(batches)[0]
    loader.dataset.set_teacher_side(False)
    keys = [set(next(batches)[0]) for _ in range(6)]
    assert keys[-1] == {"input"}  # batches the worker prefetched before the switch may still carry the teacher side


def test_the_switch_waits_for_the_batch_in_the_making(refs, tmp_path):
    """A switch seen between two samples of one batch (a worker's race with the trainer) applies after that batch:
    collating needs the same keys in every sample of a batch."""
    path = _docs_file(tmp_path, DOCS * 6)
    dataset = ByteAlignedTextDataset("let_test_documents", path, refs["project"].tokenizer, 12, infinite=True,
                                     teacher_tokenizer=refs["qwen"].tokenizer, teacher_len=20, same_document=False,
                                     batch_size=3)
    samples = iter(dataset)
    first = [next(samples)[0] for _ in range(2)]
    dataset.set_teacher_side(False)
    rest = [next(samples)[0] for _ in range(4)]
    assert ["teacher_input" in sample for sample in first + rest] == [True, True, True, False, False, False]
    assert set(rest[-1]) == {"input"}


def test_a_dataloader_worker_reports_the_documents_it_rejects(refs, tmp_path, capfd):
    """training.dataloader.num_workers = 1: the count lives in the worker process, so the worker itself logs it."""
    import logging
    import sys

    from let_components.tokens.bytes_data import build_byte_aligned_dataloader

    handler = logging.StreamHandler(sys.stderr)  # what init_logger gives a training run: records reach the console
    logging.getLogger().addHandler(handler)
    try:
        path = _docs_file(tmp_path, [DOCS[0], DECOMPOSED, DOCS[2], DECOMPOSED] * 2)
        job_config = parse_config(
            "train_configs/let_debug.toml", "--training.dataset", "let_test_documents", "--training.dataset_path", path,
            "--training.seq_len", "12", "--training.local_batch_size", "2", "--training.dataloader.num_workers", "1",
        )
        loader = build_byte_aligned_dataloader(1, 0, refs["project"].tokenizer, job_config,
                                               teacher_tokenizer=refs["qwen"].tokenizer, teacher_len=20,
                                               same_document=False, infinite=False)
        batches = list(loader)
    finally:
        logging.getLogger().removeHandler(handler)
    assert batches and loader.dataset.invalid_documents == 0  # the trainer's copy never tokenized anything
    logged = capfd.readouterr().err
    for count, position in ((1, 1), (2, 3), (3, 5), (4, 7)):
        assert f"document {position} of" in logged and f"({count} such documents so far" in logged


@pytest.mark.parametrize("name", ["project", "gemma", "llama2"])
def test_student_windows_are_torchtitans(refs, tmp_path, name):
    """A student whose spans come from offsets too: its ids are the ones torchtitan's own encode call gives."""
    path = _docs_file(tmp_path, DOCS * 2)
    student, teacher = refs[name].tokenizer, refs["qwen"].tokenizer
    titan = [(x["input"].tolist(), y.tolist()) for x, y in HuggingFaceTextDataset("let_test_documents", path,
                                                                                    student, 16)]
    ours = [(x["input"].tolist(), y.tolist()) for x, y in _aligned(path, student, teacher, 16, 16, True)]
    assert ours == titan


DECOMPOSED = "Cafe\u0301 and A\u030angstro\u0308m, decomposed."


def test_a_document_a_normalizer_changes_gets_no_target(refs, tmp_path, caplog):
    """The Qwen-style teacher's NFC turns 'e' + combining accent (3 bytes) into 'é' (2 bytes): its tokens no longer
    cover the text byte for byte, so neither side of that document takes part in a pair; the rest is unaffected.
    The document is reported with its position, so the count is never only a number inside the dataset."""
    docs = [DOCS[0], DECOMPOSED, DOCS[2], DOCS[3]]
    student, teacher = refs["project"], refs["qwen"]
    student_stream, teacher_stream = ref_stream(student, docs), ref_stream(teacher, docs, frozenset({1}))
    seq_len = len(student_stream) - 1  # one window: all documents
    dataset = _aligned(_docs_file(tmp_path, docs), student.tokenizer, teacher.tokenizer, seq_len, 2 * seq_len, False)
    (got,) = [_as_lists(sample) for sample in dataset]
    (expected,) = ref_windows(student_stream, teacher_stream, seq_len, 2 * seq_len, False, frozenset({1}))
    assert got == expected
    assert dataset.invalid_documents == 1
    reports = [r.getMessage() for r in caplog.records if "not tokenized byte for byte" in r.getMessage()]
    assert len(reports) == 1 and "document 1 of" in reports[0] and "by the teacher tokenizer" in reports[0]
    index = np.asarray(got[2])
    student_doc = np.asarray([s[3] for s in student_stream[:seq_len]])
    teacher_doc = np.asarray([t[3] for t in teacher_stream])
    assert (index[student_doc == 1] == -1).all()
    assert not (teacher_doc[index[index >= 0]] == 1).any()
    assert (index[student_doc != 1] >= 0).mean() > 0.9


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(type(v) is int for v in value)
    return type(value) is int


@pytest.mark.parametrize("name", ["let_test_documents", "let_test_documents_streaming"])
def test_state_dict_round_trip_continues_exactly(refs, tmp_path, name):
    path = _docs_file(tmp_path, DOCS * 3)
    student, teacher = refs["project"].tokenizer, refs["qwen"].tokenizer
    first = _aligned(path, student, teacher, 11, 9, True, infinite=True, name=name)
    stream = iter(first)
    for _ in range(7):
        next(stream)
    state = pickle.loads(pickle.dumps(first.state_dict()))  # as torchtitan's checkpoint stores it
    if name == "let_test_documents":
        assert _plain(state) and state["teacher_side"]["teacher"]["ids"]
    second = _aligned(path, student, teacher, 11, 9, True, infinite=True, name=name)
    second.load_state_dict(state)
    resumed = iter(second)
    # 40 windows: past the end of the documents, into the re-loop
    for _ in range(40):
        assert _as_lists(next(resumed)) == _as_lists(next(stream))
    assert second.invalid_documents == first.invalid_documents == 0


def test_teacher_side_switches_off_and_its_state_stays_loadable(refs, tmp_path):
    path = _docs_file(tmp_path, DOCS * 3)
    student, teacher = refs["project"].tokenizer, refs["qwen"].tokenizer
    titan = iter(HuggingFaceTextDataset("let_test_documents", path, student, 11, infinite=True))
    dataset = _aligned(path, student, teacher, 11, 11, False, infinite=True)
    stream = iter(dataset)
    for _ in range(5):
        inputs, labels = next(stream)
        assert inputs.keys() == {"input", "teacher_input", "teacher_index", "teacher_lost", "teacher_length",
                                 "teacher_head", "teacher_bytes", "label_bytes"}
        assert inputs["input"].tolist() == next(titan)[0]["input"].tolist()
    dataset.set_teacher_side(False)
    for _ in range(3):
        inputs, labels = next(stream)
        expected, expected_labels = next(titan)
        assert inputs.keys() == {"input"}
        assert inputs["input"].tolist() == expected["input"].tolist() and labels.tolist() == expected_labels.tolist()
    saved = pickle.dumps(dataset.state_dict())
    state = pickle.loads(saved)
    assert "teacher_side" not in state and state["token_buffer"]
    upcoming = [next(titan)[0]["input"].tolist() for _ in range(10)]

    plain = HuggingFaceTextDataset("let_test_documents", path, student, 11, infinite=True)
    plain.load_state_dict(pickle.loads(saved))  # torchtitan's dataset extends the loaded list in place
    assert [x["input"].tolist() for x, _ in _take(plain, 10)] == upcoming

    # with the teacher side on, the tokens buffered before the restart have no target; the later ones do
    restarted = _aligned(path, student, teacher, 11, 11, False, infinite=True)
    restarted.load_state_dict(state)
    samples = _take(restarted, 10)
    assert [x["input"].tolist() for x, _ in samples] == upcoming
    buffered = len(state["token_buffer"])
    assert (samples[0][0]["teacher_index"][:buffered] == -1).all()
    assert (samples[-1][0]["teacher_index"] >= 0).any()

    # and switching back on mid-stream behaves the same
    dataset.set_teacher_side(True)
    inputs, _ = next(stream)
    assert inputs["input"].tolist() == upcoming[0] and "teacher_index" in inputs


def _take(dataset, n: int) -> list:
    stream = iter(dataset)
    return [next(stream) for _ in range(n)]


def _save_whitespace_bpe(folder: Path) -> Path:
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(DOCS, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"],
                                                            show_progress=False))
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_a_tokenizer_that_cannot_say_its_bytes_is_refused_in_one_line():
    from torchtitan.components.tokenizer import BaseTokenizer

    class Opaque(BaseTokenizer):
        """Neither a tokenizer.json nor a tiktoken file behind it."""

        def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
            return [ord(c) for c in text]

        def decode(self, ids: list[int]) -> str:
            return "".join(map(chr, ids))

        def get_vocab_size(self) -> int:
            return 0x110000

    with pytest.raises(LETConfigError) as error:
        ByteTokenizer.build(Opaque(), "model.hf_assets_path")
    message = str(error.value)
    assert message.startswith("model.hf_assets_path: a Opaque does not say which bytes") and "\n" not in message
    assert "tiktoken files are supported" in message


def test_a_normalizer_that_deletes_text_is_refused_in_one_line(refs, tmp_path):
    """Offsets cannot cover text a normalizer removed: the probe text shows it before anything is built."""
    from tokenizers import normalizers

    folder = save_sentencepiece_tokenizer(tmp_path / "deletes", "gemma")
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    hf.normalizer = normalizers.Sequence([normalizers.Replace("e", ""), normalizers.Replace(" ", METASPACE)])
    hf.save(str(folder / "tokenizer.json"))
    tokenizer = load_tokenizer(folder)
    with pytest.raises(LETConfigError) as error:
        ByteTokenizer.build(tokenizer, "let.teacher_path")
    message = str(error.value)
    assert message.startswith(f"let.teacher_path='{folder}': its tokens do not cover the text byte for byte")
    assert "\n" not in message
    with pytest.raises(LETConfigError, match="^let.teacher_path='"):
        _aligned(_docs_file(tmp_path, DOCS), refs["project"].tokenizer, tokenizer, 8, 8, False)


def test_a_tokenizer_that_drops_whitespace_is_refused_in_one_line(refs, tmp_path):
    """Offsets that leave bytes out (a Whitespace pre-tokenizer, as WordPiece has) would pass for a normalizer that
    deleted text: refused before anything is built, naming the key."""
    tokenizer = load_tokenizer(_save_whitespace_bpe(tmp_path / "whitespace"))
    with pytest.raises(LETConfigError) as error:
        ByteTokenizer.build(tokenizer, "model.hf_assets_path")
    message = str(error.value)
    assert message.startswith(f"model.hf_assets_path='{tmp_path / 'whitespace'}': its tokens do not cover the text")
    assert "pre-tokenizer that drops whitespace" in message and "\n" not in message
    with pytest.raises(LETConfigError, match="^let.teacher_path='"):
        _aligned(_docs_file(tmp_path, DOCS), refs["project"].tokenizer, tokenizer, 8, 8, False)


def test_a_byte_level_tokenizer_that_adds_a_prefix_space_is_refused(tmp_path):
    folder = tmp_path / "prefix_space"
    folder.mkdir()
    spec = json.loads((ASSETS / "tokenizer" / "tokenizer.json").read_text())
    spec["pre_tokenizer"]["add_prefix_space"] = True
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(LETConfigError, match="do not cover the text byte for byte"):
        ByteTokenizer.build(load_tokenizer(folder), "let.teacher_path")


@pytest.mark.parametrize("same_document", [False, True])
@pytest.mark.parametrize("pair", [("project", "gemma"), ("qwen", "llama2"), ("gemma", "project")], ids="-".join)
def test_teacher_bos_starts_every_teacher_window(refs, tmp_path, pair, same_document):
    """teacher_bos: a teacher that always read its BOS first (Gemma) gets it at the start of every teacher window,
    also those that start inside a document; it is nobody's target and takes one of the teacher_len slots."""
    student, teacher = refs[pair[0]], refs[pair[1]]
    docs = DOCS * 2
    path = _docs_file(tmp_path, docs)
    bos = tuple(ByteTokenizer.build(teacher.tokenizer, "let.teacher_path").prefix)
    assert bos == (teacher.tokenizer.bos_id,)
    student_stream, teacher_stream = ref_stream(student, docs), ref_stream(teacher, docs)
    for seq_len in (16, 37):
        for teacher_len in (seq_len, 2 * seq_len):
            expected = ref_windows(student_stream, teacher_stream, seq_len, teacher_len, same_document, bos=bos)
            got = [_as_lists(sample) for sample in _aligned(path, student.tokenizer, teacher.tokenizer, seq_len,
                                                            teacher_len, same_document, teacher_bos=True)]
            assert got == expected
            assert all(g[1][0] == bos[0] for g in got)
            assert sum(g[1][1] != bos[0] for g in got) > len(got) // 2  # most windows start inside a document


def test_identical_tokenizers_with_teacher_bos_shift_by_one(refs, tmp_path):
    """The identity, with teacher_bos: a window that starts inside a document reads [BOS] + the student's window, so
    position j is aligned with j + 1 and the last one falls beyond teacher_len = seq_len (counted as lost)."""
    ref = refs["gemma"]
    twin = load_tokenizer(ref.tokenizer.tokenizer_path)
    bos = ref.tokenizer.bos_id
    seq_len = 11
    samples = list(_aligned(_docs_file(tmp_path, DOCS * 2), ref.tokenizer, twin, seq_len, seq_len, False,
                            teacher_bos=True))
    shifted = 0
    for inputs, _ in samples:
        student = inputs["input"].tolist()
        if student[0] == bos:
            assert inputs["teacher_input"].tolist() == student
            assert inputs["teacher_index"].tolist() == list(range(seq_len))
        else:
            shifted += 1
            assert inputs["teacher_input"].tolist() == [bos] + student[:-1]
            assert inputs["teacher_index"].tolist() == [*range(1, seq_len), -1]
            assert int(inputs["teacher_lost"]) == 1
    assert 0 < shifted < len(samples)


def test_the_bos_put_before_a_window_predicts_nothing(refs, tmp_path):
    """Review finding: with teacher_bos the BOS put before a window that starts inside a document got a label, the
    window's first teacher token predicted from the BOS alone (the student never has to do that), which biased the
    teacher's LM loss (caught-up rule, sanity check) upward. Positions only that BOS precedes now carry no label and
    no alignment target; a document's own BOS keeps its label."""
    from let_components.tokens.bytes_aligned import BytesAligned

    ref = refs["gemma"]
    bos, student_bos = ref.tokenizer.bos_id, refs["project"].tokenizer.bos_id
    token_map, inserted, own, heads = BytesAligned(lambda tokens: None), 0, 0, []
    for inputs, _ in _aligned(_docs_file(tmp_path, DOCS * 2), refs["project"].tokenizer, ref.tokenizer, 16, 24, False,
                              teacher_bos=True):
        teacher, index = inputs["teacher_input"], inputs["teacher_index"]
        batch = {key: value[None] for key, value in inputs.items()}
        labels = token_map.teacher_labels(torch.zeros(1, 16, dtype=torch.long), token_map.split(batch))[0]
        assert teacher[0] == bos
        if inputs["input"][0] != student_bos:  # the window starts inside a document: its BOS was put there
            inserted += 1
            assert labels[0] == IGNORE_INDEX and labels[1] == teacher[2]
            assert not (index == 0).any()
        else:
            own += 1
            assert labels[0] == teacher[1]
        heads.append((int(inputs["input"][0] != student_bos), int(inputs.get("teacher_head", -1))))
    assert all(inside == head for inside, head in heads)
    assert inserted > 0 and own > 0


def test_a_literal_metaspace_counts_its_three_bytes_in_the_teachers_loss_per_byte(refs, tmp_path):
    """Review finding: a SentencePiece normalizer writes a space as '\u2581', so a literal U+2581 in the text and a
    space are one piece, which the per-id byte table counts as 1 byte instead of 3. Under the byte alignment the
    teacher's loss per byte (caught-up rule, sanity line) now divides by the bytes read off the text."""
    from let_components.tokens.bytes_aligned import BytesAligned
    from let_components.tokens.per_byte import lm_loss_sums, text_byte_lengths

    teacher = refs["gemma"].tokenizer
    doc = "Sentence\u2581piece writes \u2581 for a space: x\u2581y z."
    encoding = teacher.tokenizer.encode(doc, add_special_tokens=False)
    stream = [(teacher.bos_id, 0), *((i, len(doc[a:b].encode())) for i, (a, b) in
                                       zip(encoding.ids, encoding.offsets, strict=True)), (teacher.eos_id, 0)] * 8
    table = torch.from_numpy(text_byte_lengths(teacher, "let.teacher_path"))
    token_map, literal_windows = BytesAligned(lambda tokens: None), 0
    for inputs, _ in _aligned(_docs_file(tmp_path, [doc] * 8), refs["project"].tokenizer, teacher, 16, 40, False):
        length = int(inputs["teacher_length"])
        window = inputs["teacher_input"][:length].tolist()
        start = next(i for i in range(len(stream)) if [t for t, _ in stream[i:i + length]] == window)
        expected = sum(n for _, n in stream[start + 1:start + length])  # the labels: the window's tokens 1..
        split = token_map.split({key: value[None] for key, value in inputs.items()})
        labels = token_map.teacher_labels(torch.zeros(1, 16, dtype=torch.long), split)
        label_bytes = token_map.teacher_label_bytes(split) if hasattr(token_map, "teacher_label_bytes") else None
        logits = torch.zeros(*labels.shape, len(table))
        counted = (lm_loss_sums(logits, labels, table, label_bytes) if label_bytes is not None else
                   lm_loss_sums(logits, labels, table))[1]  # the table alone: what the step used before the fix
        literal_windows += int(table[labels.clamp(min=0)].sum() != expected)
        assert counted == expected, (window, counted, expected)
    assert literal_windows > 0  # windows whose literal U+2581 the table miscounts


def test_byte_fallback_pieces_each_get_their_byte(refs):
    """A character outside the vocabulary is one <0xNN> piece per UTF-8 byte, all with that character's offsets."""
    byte_tokenizer = ByteTokenizer.build(refs["gemma"].tokenizer, "let.teacher_path")
    text = "x \U0001f642\u6f22"
    spans = byte_tokenizer.spans(text)
    tokens = [refs["gemma"].tokenizer.id_to_token(int(i)) for i in spans.ids]
    raw = text.encode("utf-8")
    assert tokens[-8:-1] == ["<0xF0>", "<0x9F>", "<0x99>", "<0x82>", "<0xE6>", "<0xBC>", "<0xA2>"]
    assert spans.start[-8:-1].tolist() == list(range(2, 9)) and spans.end[-8:-1].tolist() == list(range(3, 10))
    assert spans.covers and spans.end[-1] == len(raw)


@pytest.mark.parametrize("style", ["llama2", "mistral"])
def test_a_prefix_space_is_aligned_but_has_no_per_token_table(refs, style):
    """Llama 2 / Mistral put '▁' before every text: offsets give that '▁' no byte (the alignment reference above
    agrees), but a per-id table would count one byte per document that is not in it: bits per byte and the caught-up
    rule refuse it in one line naming the key and what needs the bytes."""
    tokenizer = refs[style].tokenizer
    spans = ByteTokenizer.build(tokenizer, "let.teacher_path").spans("Hi")
    assert tokenizer.id_to_token(int(spans.ids[1])).startswith(METASPACE) and spans.start[1] == 0
    with pytest.raises(LETConfigError) as error:
        token_byte_lengths(tokenizer, "let.teacher_path", "bits per byte")
    message = str(error.value)
    assert message.startswith(f"let.teacher_path='{tokenizer.tokenizer_path}': its tokens do not cover the text")
    assert "prefix space" in message and "which bits per byte needs" in message and "\n" not in message
