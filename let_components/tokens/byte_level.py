"""A byte-level tokenizer with no merges: one id per byte, then BOS and EOS.

The dry run's stand-in for a teacher's tokenizer that is not on this machine (teacher/stand_in.py): its 258 ids fit
any teacher's vocabulary, it reads any text, and it is the kind of tokenizer.json every part of the package accepts
(byte-level BPE: the byte alignment, bits per byte). Written with the `tokenizers` library that torchtitan reads it
with, so the file is what a real byte-level BPE folder holds.
"""

import json
from pathlib import Path

from .tokenizers import has_tokenizer

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
BYTE_LEVEL_IDS = 258
"""256 bytes, BOS and EOS."""


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character of each byte (what a byte-level BPE vocabulary is written in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return {byte: chr(byte if byte in printable else next(shifted)) for byte in range(256)}


def write_byte_level_tokenizer(folder: str | Path) -> Path:
    """tokenizer.json (id b = byte b, then BOS, EOS) and tokenizer_config.json in `folder`; left as it is when the
    folder already holds a tokenizer (written by an earlier start of the same run)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    folder = Path(folder)
    if has_tokenizer(folder):
        return folder
    vocab = {char: byte for byte, char in _byte_to_unicode().items()}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([BOS, EOS])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"bos_token": BOS, "eos_token": EOS, "add_bos_token": False, "add_eos_token": False,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
