"""A user's own dataset, uploaded through the app as two CSV files (gzip allowed), and how the app and the CLI
find a data set by what a user names.

The files are validated by ``core.data.load_files`` exactly like the bundled ones — within
``core.data.UPLOAD_LIMITS`` (decompressed size and lines per file, checked while decompressing, so a small
"gzip bomb" is refused in one line without filling the server's memory) — then kept under
``cache/uploads/upload-<hex>/`` as ``interactions.csv[.gz]`` and ``items.csv[.gz]``, byte for byte, so that
``core.data.load(folder)`` (the CLI, a background job) reads the same data. Its data set is named by the files'
content, ``data-<hex>`` (``core.data.content_identity``): the same name as the same two files get as a folder or
as ``--interactions/--items``, so models trained any of these ways are one data set's. Files that fail
validation are not kept. Error messages name the files as the user called them, not the cache path.
"""

from __future__ import annotations

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


def _upload_folder(identity: str) -> Path:
    return uploads_dir() / f"upload-{identity.removeprefix('data-')}"


def upload_folder(identity: str) -> Path | None:
    """The folder of the uploaded files whose data set is ``identity`` (``data-<12 hex>``); None when no such
    upload is kept."""
    if not data.is_identity(identity):
        return None
    folder = _upload_folder(identity)
    return folder if (folder / "names.json").is_file() else None


def save_upload(interactions: bytes, interactions_name: str, items: bytes, items_name: str) -> Path:
    """Validate the two files and keep them; returns the dataset folder. Raises DataError (one sentence)."""
    folder = _upload_folder(data.content_identity(interactions, items))
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


def resolve(name: str, folders: bool = True) -> str:
    """The key the app and ``core.data.load`` take (a bundled name or a folder path) for a data set named by a
    user: a bundled name, the id of uploaded files (``data-<12 hex>``), or — only when ``folders`` — a folder
    holding interactions.csv[.gz] and items.csv[.gz] (returned as an absolute path). Raises DataError (one
    sentence) naming the choices."""
    if name in data.BUNDLED:
        return name
    if data.is_identity(name):
        folder = upload_folder(name)
        if folder is None:
            raise data.DataError(f"No data set {name} on this server: upload its two files on the Home page (or "
                                 "open their folder from the command line).")
        return str(folder)
    if not folders:
        raise data.DataError(f"No data set named '{name}': choose {', '.join(data.BUNDLED)} or the id (data-…) of "
                             "uploaded files; a folder opens only from LLMSEQ_DATASET or the command line.")
    if not Path(name).is_dir():
        raise data.DataError(f"No data set named '{name}': choose {', '.join(data.BUNDLED)} or a folder with "
                             f"{data.FOLDER_FILES}.")
    data.folder_files(name)  # refuses a folder without the two files
    return str(Path(name).resolve())


def url_name(key: str) -> str:
    """How a data set (a key as :func:`resolve` gives it) is named where anyone may read it (a URL, a link): a
    bundled name, else its content name ``data-<12 hex>`` — never a server path. Raises DataError when the
    folder's files cannot be read."""
    return data.dataset_name(key)
