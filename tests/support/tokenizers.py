"""Tokenizer folders in miniature for the tests: Qwen-style and SentencePiece-style BPE, a word-level one and a
tiktoken BPE file. The trained ones learn from the first 200 documents of the sample corpus (no hub in tests)."""

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from tests.support import ASSETS

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def save_qwen_tokenizer(folder: Path, vocab_size: int = 512) -> Path:
    """A Qwen-style tokenizer.json in miniature: byte-level BPE behind Qwen2's split regex, NFC, the <|endoftext|> /
    <|im_start|> / <|im_end|> special tokens after the merges, and Qwen's tokenizer_config.json (no bos token,
    eos <|endoftext|>). Trained on the first 200 documents of the sample corpus (no hub in tests)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    lines = (ASSETS / "sample_corpus" / "train.jsonl").read_text().splitlines()[:200]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN_SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((json.loads(line)["text"] for line in lines), trainer)
    tokenizer.add_special_tokens(list(QWEN_SPECIAL))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    first = tokenizer.token_to_id(QWEN_SPECIAL[0])
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "add_prefix_space": False, "errors": "replace", "split_special_tokens": False,
        "added_tokens_decoder": {str(first + i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                                 "normalized": False, "single_word": False}
                                 for i, t in enumerate(QWEN_SPECIAL)},
    }))
    return folder


def save_wordlevel_tokenizer(folder: Path) -> Path:
    """A tokenizer.json that is not byte-level (WordLevel on whitespace): its tokens do not say which bytes they
    cover, so cross-tokenizer alignment must refuse it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "<s>", "</s>", "the", "a", "of"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    return folder


SENTENCEPIECE_STYLES = ("gemma", "llama2", "mistral")
"""How a SentencePiece-style BPE writes spaces: gemma: a Replace(' ' -> '▁') normalizer, no prefix space;
llama2: Prepend('▁') + Replace (a prefix space before every text); mistral: a Metaspace pre-tokenizer that prepends
'▁' unless the text starts with a space."""


def save_sentencepiece_tokenizer(folder: Path, style: str = "gemma", vocab_size: int = 400) -> Path:
    """A SentencePiece-style BPE tokenizer.json in miniature, as Gemma 3, Llama 2 and Mistral ship theirs: pieces
    with '▁' for a space, the 256 byte-fallback pieces <0x00>..<0xFF> after the special tokens (so characters
    outside the vocabulary, e.g. CJK or emoji, become one piece per byte), a post-processor that puts BOS first, and
    tokenizer_config.json with bos/eos. Trained on the first 200 documents of the sample corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    bos, eos = ("<bos>", "<eos>") if style == "gemma" else ("<s>", "</s>")
    specials = ["<pad>", eos, bos, "<unk>"]
    metaspace = "\u2581"
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    replace = normalizers.Replace(" ", metaspace)
    if style == "gemma":
        tokenizer.normalizer = replace
    elif style == "llama2":
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(metaspace), replace])
    elif style == "mistral":
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=metaspace, prepend_scheme="first", split=False)
    else:
        raise ValueError(f"style={style!r}: one of {SENTENCEPIECE_STYLES}")
    lines = (ASSETS / "sample_corpus" / "train.jsonl").read_text().splitlines()[:200]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials, limit_alphabet=80,
                                  show_progress=False)
    tokenizer.train_from_iterator((json.loads(line)["text"] for line in lines), trainer)
    spec = json.loads(tokenizer.to_str())
    # byte pieces right after the special tokens, as in SentencePiece vocabularies; merges name pieces, not ids
    trained = sorted(spec["model"]["vocab"].items(), key=lambda item: item[1])
    pieces = [token for token, _ in trained[:len(specials)]] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [token for token, _ in trained[len(specials):] if token not in pieces]
    spec["model"]["vocab"] = {token: i for i, token in enumerate(pieces)}
    spaces = (decoders.Metaspace(replacement=metaspace, prepend_scheme="first", split=False) if style == "mistral"
              else decoders.Replace(metaspace, " "))
    strip = [decoders.Strip(" ", 1, 0)] if style == "llama2" else []
    spec["decoder"] = json.loads(decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(), spaces, *strip])
                                 .__getstate__())
    spec["post_processor"] = json.loads(processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, specials.index(bos))]).__getstate__())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": bos, "eos_token": eos,
                                                              "unk_token": "<unk>", "pad_token": "<pad>"}))
    return folder


def save_tiktoken_file(path: Path, merges: Sequence[bytes] = (b"th", b"he", b"the")) -> Path:
    """A tiktoken BPE file (as Llama 3's original/tokenizer.model): the 256 byte tokens, then `merges`, in tiktoken's
    `<base64> <rank>` format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = [bytes([b]) for b in range(256)] + list(merges)
    path.write_text("".join(f"{base64.b64encode(t).decode()} {rank}\n" for rank, t in enumerate(tokens)))
    return path
