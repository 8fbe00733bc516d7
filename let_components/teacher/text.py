"""A teacher's text settings (its vocabulary, width and depth), read in one place whatever config.json's layout:
its top level, a multimodal model's `text_config`, or the names another family gives them (GPT-2's n_embd, n_layer),
the latter two through transformers' own config classes (imported only for such a config)."""

from typing import Any

from ..config import LETConfigError

INSTALL = 'pip install "let-titan[hf]"'
"""What installs the transformers backend (the `hf` extra)."""

TEXT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers")
"""The text model's settings every teacher reader needs, under the names transformers gives them."""


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The text model's settings of a teacher's config.json, read here by every reader of its width, depth and
    vocabulary: the top level where it names them (every native family), else transformers' own reading of it - a
    multimodal model's `text_config` (Gemma 3's `model_type: gemma3`) with the defaults a saved sub-config leaves
    out, or other names for the same settings (GPT-2's n_embd, n_layer)."""
    if "text_config" not in config and all(key in config for key in TEXT_KEYS):
        return config
    return text_settings(config)


def config_object(config: dict[str, Any]) -> Any:
    """config.json as transformers' config object (its defaults filled in)."""
    try:
        from transformers import AutoConfig
    except ImportError:
        raise LETConfigError(
            f"let.teacher_path: config.json of model_type {config.get('model_type')!r} does not name "
            f"{', '.join(TEXT_KEYS)} at its top level; only the transformers backend reads it ({INSTALL})"
        ) from None
    values = {key: value for key, value in config.items() if key != "model_type"}
    return AutoConfig.for_model(config["model_type"], **values)


def text_settings(config: dict[str, Any]) -> dict[str, Any]:
    """text_config for a config.json only transformers can read: its text model's settings, with
    TEXT_KEYS under their standard names."""
    text = config_object(config).get_text_config()
    return {**text.to_dict(), **{key: getattr(text, key) for key in TEXT_KEYS}}
