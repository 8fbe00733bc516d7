"""Shared test helpers: tiny random Hugging Face checkpoints (transformers is the test-only reference), training runs
through run_train.sh and reading their logs."""

import json
import os
import re
import subprocess
from pathlib import Path

from recipes.hf_folder import copy_tokenizer_files
from recipes.run_logs import read_scalars

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"


def save_llama(folder: Path, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight LlamaForCausalLM saved with save_pretrained (+ the tokenizer files, if given)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(LlamaConfig(**{**defaults, **config_kwargs})).eval()
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


def save_qwen(folder: Path, model_type: str, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight Qwen2ForCausalLM / Qwen3ForCausalLM (model_type "qwen2" / "qwen3") saved with save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=1_000_000.0, tie_word_embeddings=False,
    )
    config = AutoConfig.for_model(model_type, **{**defaults, **config_kwargs})
    model = AutoModelForCausalLM.from_config(config).eval()
    # transformers initialises norms to 1 and biases to 0: randomise them so the key mapping is really tested
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1 + 0.2 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


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


def rewrite_config(folder: Path, **changes) -> None:
    """Edit config.json in place (None deletes a key): e.g. turn transformers 5.x keys into 4.x ones."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config, indent=2))


def run_train(*args: str, ngpu: int = 1, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """./run_train.sh with CPU ranks; returns the finished process (stdout+stderr in .stdout)."""
    run_env = {**os.environ, "NGPU": str(ngpu), "PYTHONUNBUFFERED": "1", **(env or {})}
    run_env["PYTHONPATH"] = str(REPO) + os.pathsep + run_env.get("PYTHONPATH", "")
    return subprocess.run(
        ["bash", str(REPO / "run_train.sh"), *args], cwd=REPO, env=run_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


def let_lines(log: str) -> dict[int, dict[str, float]]:
    """step -> {lambda, alignment_loss, cosine} from the console's [LET] step lines."""
    number = r":\s*([\d.e+-]+)\s*"
    pattern = re.compile(rf"\[LET\] step{number}lambda{number}alignment_loss{number}cosine{number}")
    return {int(m[1]): {"lambda": float(m[2]), "alignment_loss": float(m[3]), "cosine": float(m[4])}
            for m in pattern.finditer(log)}


def tb_scalars(folder: Path, tag: str) -> dict[int, float]:
    """step -> value of one TensorBoard scalar written under `folder` (full float precision)."""
    return read_scalars(folder, (tag,))[tag]


def save_tiny_teacher(folder: Path, model_type: str, gpt2_style_tokenizer: bool = False) -> Path:
    """A random teacher of one architecture in the project tokenizer's 4096-token vocabulary, with that tokenizer.

    gpt2_style_tokenizer: bos and eos are the same token, as in Pythia's and OPT's tokenizers.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    shapes = {
        "llama": dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True),
        "gpt_neox": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, rotary_pct=0.25),
        "opt": dict(hidden_size=64, ffn_dim=128, num_attention_heads=4, word_embed_proj_dim=64),
    }
    config = AutoConfig.for_model(
        model_type, vocab_size=4096, num_hidden_layers=2, max_position_embeddings=512, **shapes[model_type]
    )
    AutoModelForCausalLM.from_config(config).eval().save_pretrained(folder)
    tokenizer = ASSETS / "tokenizer"
    copy_tokenizer_files(tokenizer, folder)
    tokenizer_config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    if gpt2_style_tokenizer:
        tokenizer_config["bos_token"] = tokenizer_config["eos_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def assert_final_state_matches(model, teacher, tokens):
    """teacher(tokens) equals transformers' hidden_states[-1], and its logits the HF logits (fp32, atol 1e-4)."""
    import torch

    with torch.no_grad():
        ref = model(tokens, output_hidden_states=True)
        hidden = teacher(tokens)
        torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(teacher.logits(hidden), ref.logits, atol=1e-4, rtol=0)
    return hidden
