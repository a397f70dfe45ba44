"""Per-dataset defaults: the options chosen on a dataset's validation folds, read from ``defaults.toml``.

A model's config class holds the paper's values (Boz et al. 2024, appendix: tuned on Beauty by the authors);
that is the ``paper`` preset. The ``tuned`` preset (the default of the CLI and the app's Train form) applies
the dataset's section of ``defaults.toml`` on top: values chosen on that dataset's validation folds only
(``bench/tune_sequential.py``), each written beside the fold figure that chose it. An LLM2 twin starts from its
vanilla model's section (``[beauty.sasrec]`` for ``llm2sasrec``), then its own. A dataset without a section
gets the class defaults.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from core.common import ConfigError
from core.config import apply_overrides

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
Preset = Literal["tuned", "paper"]
PRESETS: tuple[str, ...] = ("tuned", "paper")


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    with DEFAULTS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def dataset_defaults(name: str, dataset: str | None, preset: str = "tuned") -> dict[str, Any]:
    """Options of model ``name`` on ``dataset`` under ``preset`` (``{}`` for ``paper``, an unknown dataset or
    ``None``): ``{option: value}``, as in ``defaults.toml`` without the figures. Raises :class:`ConfigError`
    for an unknown preset."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; use one of {', '.join(PRESETS)}")
    if preset == "paper" or dataset is None:
        return {}
    return {option: entry["value"] for option, entry in _entries(name, dataset).items()}


def chosen_by(name: str, dataset: str) -> dict[str, str]:
    """``{option: the fold figure that chose it}`` for model ``name`` on ``dataset`` (tuned preset)."""
    return {option: entry.get("fold", "") for option, entry in _entries(name, dataset).items()}


def _entries(name: str, dataset: str) -> dict[str, dict[str, Any]]:
    """``{option: {"value", "fold"}}`` of ``name`` on ``dataset``: an LLM2 twin's vanilla section, then its own."""
    section = _table().get(dataset, {})
    keys = (name.removeprefix("llm2"), name) if name.startswith("llm2") else (name,)
    return {option: entry for key in keys for option, entry in section.get(key, {}).items()}


def default_config(name: str, dataset: str | None, preset: str = "tuned") -> Any:
    """The config model ``name`` gets on ``dataset`` before any user override (see the module docstring)."""
    from core.models import model_class

    return apply_overrides(model_class(name).Config(), dataset_defaults(name, dataset, preset))
