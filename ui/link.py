"""The session builder's view in the URL, so that a link reproduces it: ``st.query_params`` holds the session's
items (``item``, repeated, in order, as the file's ids) or the test prompt it came from (``test``, a row of the
test split: its true next item is marked again), the models shown (``model``, repeated: a registry name for a
model's default save, ``name~hash`` for another variant, the hash being its folder's config part) and ``k``.
The data set is written by every page (``ui.components.page``).

A link is read once per browser session (a reload starts a new one); after that the page writes its state into
the URL on every run. Whatever a link names that is not there (an unknown item, model, test row, or a K out of
range) is left out and said in one sentence.
"""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from core.data import Dataset
from core.trained import TrainedModel

K_RANGE = (5, 30)


def model_token(model: TrainedModel) -> str:
    """``sasrec`` for a model's default save, ``sasrec~2d6af936d4`` for a variant (its folder's config hash)."""
    return model.name if not model.changed else f"{model.name}~{model.folder.name.rsplit('-', 1)[-1]}"


def read(dataset: Dataset, trained: Sequence[TrainedModel], name: str) -> tuple[dict[str, Any], list[str]]:
    """What the URL asks for: ``items`` (catalog indices) and ``origin`` (the test prompt and target, or None),
    ``models`` (labels, or None when the link names none) and ``k`` (or None); and a sentence for each thing
    it names that is not there (``name``: the data set as the user knows it)."""
    params = st.query_params
    problems: list[str] = []
    wanted: dict[str, Any] = {"items": [], "origin": None, "models": None, "k": None}
    split, catalog = dataset.split, dataset.catalog
    if "test" in params:
        row = params["test"]
        if row.isascii() and row.isdigit() and int(row) < split.n_test:
            prompt = [int(i) for i in split.prompts[int(row)]]
            wanted.update(items=prompt, origin={"prompt": prompt, "target": int(split.targets[int(row)]),
                                                "row": int(row)})
        else:
            problems.append(f"The link's test session “{row}” is not one of the {split.n_test:,} test sessions "
                            f"of {name}.")
    elif "item" in params:
        index = catalog.index_of
        ids = [i for i in params.get_all("item") if i]
        unknown = [i for i in ids if i not in index]
        wanted["items"] = list(dict.fromkeys(index[i] for i in ids if i in index))
        if unknown:
            problems.append(f"{len(unknown)} item id(s) of the link are not in {name}'s catalog and were "
                            f"left out: {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}.")
    if "model" in params or "models" in params:  # ?models=a,b: the links of earlier versions
        tokens = {model_token(m): m.label for m in trained}
        asked = params.get_all("model") + [t for v in params.get_all("models") for t in v.split(",") if t]
        wanted["models"] = [tokens[t] for t in asked if t in tokens]
        unknown = [t for t in asked if t not in tokens]
        if unknown:
            have = ", ".join(sorted({m.name for m in trained})) or "none yet"
            problems.append(f"The link names model(s) not trained on {name}: {', '.join(unknown)} "
                            f"(trained here: {have}).")
    if "k" in params:
        k = params["k"]
        if k.isascii() and k.isdigit() and K_RANGE[0] <= int(k) <= K_RANGE[1]:
            wanted["k"] = int(k)
        else:
            problems.append(f"The link's K “{k}” is not a whole number from {K_RANGE[0]} to {K_RANGE[1]}; "
                            "using 10.")
    return wanted, problems


def write(session: dict[str, Any], shown: Sequence[TrainedModel], k: int, dataset: Dataset) -> None:
    """Put the view into the URL (only what changed, so the browser's history is not flooded)."""
    origin = session.get("origin")
    wanted: dict[str, str | list[str]] = {}
    if origin and session["items"] == origin["prompt"] and "row" in origin:
        wanted["test"] = str(origin["row"])
    elif session["items"]:
        wanted["item"] = [str(dataset.catalog.item_ids[i]) for i in session["items"]]
    if shown:
        wanted["model"] = [model_token(m) for m in shown]
    wanted["k"] = str(k)
    params = st.query_params
    if "models" in params:
        del params["models"]  # written as repeated ?model= from now on
    for key in ("test", "item", "model", "k"):
        value = wanted.get(key)
        current = params.get_all(key)
        if value is None:
            if current:
                del params[key]
        elif (value if isinstance(value, list) else [value]) != current:
            params[key] = value
