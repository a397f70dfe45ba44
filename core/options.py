"""A model's options as data, so a form (the app's Train page) can be built for any registered model.

Each ``Config`` dataclass field becomes an :class:`Option`: its kind (bool, int, float, text, choice), default,
allowed values for a ``Literal``, its valid range and its help text (both declared with ``core.config.option``:
the project's configs say why for each default), and whether ``None`` is allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from core.config import Range, apply_overrides, field_help, field_range, unwrap_hint


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    default: Any
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None is allowed (an empty field means None)
    help: str = ""
    range: Range | None = None  # valid values of an int or float option


Kind = Literal["bool", "int", "float", "text", "choice"]
KINDS: dict[Any, Kind] = {bool: "bool", int: "int", float: "float"}


def model_options(config_class: type) -> list[Option]:
    hints = typing.get_type_hints(config_class)
    defaults = config_class()
    options = []
    for field in dataclasses.fields(config_class):
        target, optional, choices = unwrap_hint(hints[field.name])
        kind: Kind
        if choices:
            kind = "choice"
        else:
            kind = KINDS.get(target, "text")
        bounds = field_range(config_class, field.name)
        help_text = field_help(config_class, field.name)
        if bounds is not None:
            help_text = f"{help_text} (valid: {bounds.describe()})".strip()
        options.append(Option(name=field.name, kind=kind, default=getattr(defaults, field.name), choices=choices,
                              optional=optional, help=help_text, range=bounds))
    return options


def changed_options(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from the defaults, validated by the config's own types (raises ConfigError)."""
    defaults = config_class()
    optional = {option.name for option in model_options(config_class) if option.optional}
    cleaned = {k: (None if k in optional and isinstance(v, str) and v.strip() == "" else v) for k, v in values.items()}
    config = apply_overrides(defaults, cleaned)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(defaults, f.name)}
