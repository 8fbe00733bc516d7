"""One registry shape for every choice by name: the teacher term (`let.signal`), the token alignment
(`let.token_alignment`), the stop rule (`let.stop_when`) and the teacher architecture (config.json's `model_type`).

Like torchtitan's `register_train_spec`, a name is taken once: registering another object under it is refused in
one line (registering the same object again, as a re-imported module does, is harmless). Looking a name up that
nobody registered is the one-line configuration error naming the key and what is registered.
"""

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .config import LETConfigError

Option = TypeVar("Option")


class Registry(Generic[Option]):
    """name -> option object of one choice; `key` is what the choice is called in errors (e.g. "let.signal"),
    `read` reads the run's name off its job config (the one place that does)."""

    def __init__(self, key: str, read: Callable[[Any], str] | None = None):
        self.key, self.read = key, read
        self._options: dict[str, Option] = {}

    def chosen(self, job_config: Any) -> Option:
        """The run's option: what `read` names in the job config (a one-line error if nothing registered it)."""
        if self.read is None:
            raise TypeError(f"the {self.key} registry reads no job config")
        return self[self.read(job_config)]

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
