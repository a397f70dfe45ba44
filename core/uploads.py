"""A user's own dataset, uploaded through the app as two CSV files (gzip allowed).

The files are validated by ``core.data.load_files`` exactly like the bundled ones — within
``core.data.UPLOAD_LIMITS`` (decompressed size and lines per file, checked while decompressing, so a small
"gzip bomb" is refused in one line without filling the server's memory) — then kept under
``cache/uploads/upload-<hash of both files>/`` as ``interactions.csv[.gz]`` and ``items.csv[.gz]``, so that
``core.data.load(folder)`` (the CLI, a background job) reads the same data, and models trained on it are
cached under the dataset name ``upload-<hash>``. Files that fail validation are not kept. Error messages
name the files as the user called them, not the cache path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from core import data
from core.storage import CACHE_DIR, read_json


def _suffix(filename: str) -> str:
    return ".csv.gz" if filename.lower().endswith(".gz") else ".csv"


def uploads_dir() -> Path:
    return CACHE_DIR / "uploads"


def save_upload(interactions: bytes, interactions_name: str, items: bytes, items_name: str) -> Path:
    """Validate the two files and keep them; returns the dataset folder. Raises DataError (one sentence)."""
    digest = hashlib.sha256(interactions + b"\x00" + items).hexdigest()[:12]
    folder = uploads_dir() / f"upload-{digest}"
    if (folder / "names.json").exists():
        return folder
    uploads_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=uploads_dir()))
    try:
        interactions_path = staging / f"interactions{_suffix(interactions_name)}"
        items_path = staging / f"items{_suffix(items_name)}"
        interactions_path.write_bytes(interactions)
        items_path.write_bytes(items)
        try:
            data.load(str(staging), limits=data.UPLOAD_LIMITS)
        except data.DataError as err:
            message = str(err).replace(str(interactions_path), interactions_name).replace(str(items_path), items_name)
            raise data.DataError(message) from None
        (staging / "names.json").write_text(json.dumps({"interactions": interactions_name, "items": items_name}))
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier attempt
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def display_name(dataset_key: str) -> str:
    """``beauty`` for a bundled dataset; ``my_sessions.csv (uploaded)`` for an upload."""
    if dataset_key in data.BUNDLED:
        return dataset_key
    names = read_json(Path(dataset_key) / "names.json")
    if isinstance(names, dict) and isinstance(names.get("interactions"), str):
        return f"{names['interactions']} (uploaded)"
    return Path(dataset_key).name


def readable_note(note: str, dataset_key: str) -> str:
    """A loading note with file names instead of paths (and, for an upload, the names the user gave)."""
    folder = data.DATA_DIR / dataset_key if dataset_key in data.BUNDLED else Path(dataset_key)
    note = note.replace(f"{folder}/", "")
    given = read_json(folder / "names.json")
    if isinstance(given, dict):
        for stem in ("interactions", "items"):
            for suffix in (".csv.gz", ".csv"):
                if isinstance(given.get(stem), str):
                    note = note.replace(f"{stem}{suffix}", given[stem])
    return note
