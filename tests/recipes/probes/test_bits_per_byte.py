"""recipes.probes.bits_per_byte compares models of different tokenizers on windows of equal BYTES: a window fixed in
tokens gives the larger vocabulary more bytes of context and favours it."""

import numpy as np
import pytest
import torch

from let_components.tokens.per_byte import text_byte_lengths
from let_components.tokens.tokenizers import load_tokenizer
from recipes.probes.bits_per_byte import measure, windows
from tests.support import ASSETS
from tests.support.tokenizers import save_qwen_tokenizer

TEXT = ("The teacher reads the same text in its own tokenizer, and bits per byte compare the two models whatever "
        "their vocabularies: caf\u00e9, \u6f22\u5b57, 42 and 1,024 bytes of context. ") * 12


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """The project's 4,096-token tokenizer and a 512-token one: about twice as many tokens for the same text."""
    folder = save_qwen_tokenizer(tmp_path_factory.mktemp("qwen") / "qwen", vocab_size=512)
    return {"4096": load_tokenizer(ASSETS / "tokenizer"), "512": load_tokenizer(folder)}


@pytest.mark.parametrize("window_bytes", [64, 300])
def test_every_model_gets_windows_of_the_same_bytes(tokenizers, window_bytes):
    tokens_per_window = {}
    for name, tokenizer in tokenizers.items():
        ids = tokenizer.encode(TEXT, add_bos=True, add_eos=True)
        lengths = text_byte_lengths(tokenizer, name)
        cut = list(windows(ids, lengths, window_bytes, max_tokens=10_000))
        labels = [label for _, window_labels, _ in cut for label in window_labels]
        assert labels == ids[1:]  # every token after the first predicted once, in order
        covered = [int(lengths[inputs].sum()) for inputs, _, _ in cut]
        assert max(covered) <= window_bytes and not any(was_cut for *_, was_cut in cut)
        # maximal: one more input token would pass the budget (the last window ends with the document)
        for (_, labels_, _), size in zip(cut[:-1], covered[:-1], strict=True):
            assert size + lengths[labels_[-1]] > window_bytes
        tokens_per_window[name] = np.mean([len(inputs) for inputs, _, _ in cut[:-1]])
    # the same bytes take the small vocabulary more tokens: in a fixed token window it would see less text
    assert tokens_per_window["512"] > 1.3 * tokens_per_window["4096"]


def test_the_token_cap_is_counted_never_silent(tokenizers):
    tokenizer = tokenizers["512"]
    ids = tokenizer.encode(TEXT, add_bos=True, add_eos=True)
    lengths = text_byte_lengths(tokenizer, "512")
    cut = list(windows(ids, lengths, 300, max_tokens=16))
    assert all(len(inputs) <= 16 for inputs, _, _ in cut) and sum(was_cut for *_, was_cut in cut) > 0
    vocab = len(lengths)
    result = measure(lambda x: torch.zeros(*x.shape, vocab), tokenizer, "512", [TEXT], 300, 16)
    assert result["windows_cut_by_tokens"] == sum(was_cut for *_, was_cut in cut)
    # a uniform model: ln(V) nats per predicted text token, whatever the windows
    assert result["nats_per_token"] == pytest.approx(np.log(vocab), rel=1e-6)
