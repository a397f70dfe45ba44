"""A model's options as data, so a form (the app's Train page) can be built for any registered model.

Each ``Config`` dataclass field becomes an :class:`Option`: its kind (bool, int, float, text, choice), default,
allowed values for a ``Literal``, whether ``None`` is allowed, and its help text: the comment written after the
field in the source (the project's configs carry a comment saying why for each default).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any

from core.models.base import apply_overrides


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # "bool" | "int" | "float" | "text" | "choice"
    default: Any
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None is allowed (an empty field means None)
    help: str = ""


def _field_comments(config_class: type) -> dict[str, str]:
    """``name: type = value  # comment`` -> {name: comment}, through the class and its bases."""
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            match = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
            if match:
                comments[match.group(1)] = match.group(2).strip()
    return comments


def model_options(config_class: type) -> list[Option]:
    hints = typing.get_type_hints(config_class)
    comments = _field_comments(config_class)
    defaults = config_class()
    options = []
    for field in dataclasses.fields(config_class):
        hint = hints[field.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        target = hint
        if typing.get_origin(hint) is not typing.Literal and optional:
            target = next(a for a in args if a is not type(None))
        if typing.get_origin(target) is typing.Literal:
            kind, choices = "choice", typing.get_args(target)
        elif target is bool:
            kind, choices = "bool", ()
        elif target is int:
            kind, choices = "int", ()
        elif target is float:
            kind, choices = "float", ()
        else:
            kind, choices = "text", ()
        options.append(Option(name=field.name, kind=kind, default=getattr(defaults, field.name), choices=choices,
                              optional=optional, help=comments.get(field.name, "")))
    return options


def changed_options(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from the defaults, validated by the config's own types (raises ConfigError)."""
    defaults = config_class()
    optional = {option.name for option in model_options(config_class) if option.optional}
    cleaned = {k: (None if k in optional and isinstance(v, str) and v.strip() == "" else v) for k, v in values.items()}
    config = apply_overrides(defaults, cleaned)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(defaults, f.name)}
