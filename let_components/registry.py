"""One registry shape for every choice by name: the teacher term (`let.signal`), the token alignment
(`let.token_alignment`), the stop rule (`let.stop_when`) and the teacher architecture (config.json's `model_type`).

Like torchtitan's `register_train_spec`, a name is taken once: registering another object under it is refused in
one line (registering the same object again, as a re-imported module does, is harmless). Looking a name up that
nobody registered is the one-line configuration error naming the key and what is registered.
"""

from collections.abc import Iterator
from typing import Generic, TypeVar

from .config import LETConfigError

Option = TypeVar("Option")


class Registry(Generic[Option]):
    """name -> option object of one choice; `key` is what the choice is called in errors (e.g. "let.signal")."""

    def __init__(self, key: str):
        self.key = key
        self._options: dict[str, Option] = {}

    def register(self, name: str, option: Option) -> None:
        taken = self._options.get(name)
        if taken is not None and taken is not option:
            raise ValueError(f"{self.key}={name!r} is already registered (to {taken!r}); register under another name")
        self._options[name] = option

    def __getitem__(self, name: str) -> Option:
        if name not in self._options:
            raise LETConfigError(f"{self.key}={name!r}: valid are {', '.join(self._options)}")
        return self._options[name]

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def names(self) -> list[str]:
        return list(self._options)
