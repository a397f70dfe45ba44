"""Model options: typed config dataclasses whose every field declares its valid range next to its default.

A field written ``max_length: int = option(20, low=1, help="...")`` has the default 20, the range ``[1, ∞)``
and the help text forms show (the reason for the default); a subclass may change the default
(``max_length: int = 50``) and keeps the range and help of the class that declared them. Every config
class derives from :class:`Options`, whose ``__post_init__`` checks each value against its range and the
class's own cross-field rules (``check``), so an out-of-range value is refused wherever a config is built —
the CLI's ``--set``, the app's Train page, a saved model being loaded, a search tool — with one sentence
naming the option and its range (:class:`ConfigError`).

An option added after models were saved is declared with ``keyed=False`` (e.g. ``center: bool = option(False,
keyed=False)``): at its default value it is left out of :func:`keyed_dict`, what the store hashes into a saved
model's key, so the models saved before it existed keep their keys and are not trained again.

This module imports only ``core.common``: every layer may use it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from core.common import ConfigError


@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (``<`` where open); ``None`` = unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` is in the range; NaN and ±∞ never are (an unbounded side is open)."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """``[1, ∞)``, ``(0, 1]``, ``[0, 1)``..."""
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        low = "-∞" if self.low is None else f"{self.low:g}"
        high = "∞" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}{right}"


@dataclass(frozen=True)
class Space:
    """Where ``core.tune`` (Optuna's TPE) searches one option: ``low..high`` (on a log scale with ``log``; an int
    option draws ints) or one of ``choices``. Declared next to a model's config as ``search_space``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        return f"{self.low:g}..{self.high:g}" + (" (log scale)" if self.log else "")


def between(low: float, high: float, log: bool = False) -> Space:
    return Space(low=low, high=high, log=log)


def one_of(*choices: Any) -> Space:
    return Space(choices=tuple(choices))


def option(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, help: str = "", keyed: bool = True) -> Any:
    """A dataclass field with ``default``, the valid range of its values (numbers only; none when ``low`` and
    ``high`` are both None) and its ``help`` (see the module docstring). ``keyed=False``: an option added after
    models were saved, left out of :func:`keyed_dict` at its default."""
    bounds = Range(low, high, low_open, high_open) if low is not None or high is not None else None
    return dataclasses.field(default=default, metadata={"range": bounds, "help": help, "keyed": keyed})


def _declared(config_class: type, name: str, what: str) -> Any:
    """``what`` ("range" or "help") declared for ``name`` by ``config_class`` or its nearest base that does."""
    for cls in config_class.__mro__:
        if dataclasses.is_dataclass(cls):
            for field in dataclasses.fields(cls):
                if field.name == name and field.metadata.get(what):
                    return field.metadata[what]
    return None


def field_range(config_class: type, name: str) -> Range | None:
    return _declared(config_class, name, "range")


def field_help(config_class: type, name: str) -> str:
    return _declared(config_class, name, "help") or ""


class Options:
    """Base of every config dataclass: values are checked against their ranges when the config is built."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            bounds = field_range(type(self), field.name)
            if bounds is None or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"option '{field.name}' must be a number in {bounds.describe()}, got {value!r}")
            if not bounds.contains(value):
                raise ConfigError(f"option '{field.name}' must be in {bounds.describe()}, got {value:g}")
        self.check()

    def check(self) -> None:
        """Rules between fields (e.g. ``k <= sample_size``); raise :class:`ConfigError`."""


def unwrap_hint(hint: Any) -> tuple[Any, bool, tuple[Any, ...]]:
    """A field's type hint -> (target type, None allowed, allowed values of a Literal)."""
    args = typing.get_args(hint)
    optional = type(None) in args
    target = hint
    if typing.get_origin(hint) is not typing.Literal and optional:
        target = next(a for a in args if a is not type(None))
    if typing.get_origin(target) is typing.Literal:
        return target, optional, typing.get_args(target)
    return target, optional, ()


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a config dataclass with ``overrides`` applied; strings are converted by the field's type.

    Raises :class:`ConfigError` for an unknown option, a value of the wrong type or out of its range.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown option '{key}' for {type(config).__name__}; options: {sorted(fields)}")
        changes[key] = _convert(value, hints[key], key)
    return dataclasses.replace(config, **changes)


def _convert(value: Any, hint: Any, key: str) -> Any:
    target, optional, allowed = unwrap_hint(hint)
    if not isinstance(value, str):
        if allowed and value not in allowed:
            raise ConfigError(f"option '{key}' must be one of {list(allowed)}, got {value!r}")
        if target is int and isinstance(value, float) and not isinstance(value, bool):
            if not value.is_integer():
                raise ConfigError(f"option '{key}' expects int, got {value!r}")
            return int(value)  # a number widget gives 3.0 for an integer option
        return value
    if value.strip().lower() in ("none", "null") and optional:
        return None
    if allowed:
        if value not in allowed:
            raise ConfigError(f"option '{key}' must be one of {list(allowed)}, got '{value}'")
        return value
    try:
        if target is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if target is int:
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        return target(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"option '{key}' expects {getattr(target, '__name__', target)}, got '{value}'") from None


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def keyed_dict(config: Any) -> dict[str, Any]:
    """:func:`config_dict` without the ``keyed=False`` options that are at their default: what identifies a
    fitted model (module docstring)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    return {name: value for name, value in config_dict(config).items()
            if fields[name].metadata.get("keyed", True) or value != fields[name].default}
