"""Paths that come from data: read only inside a root folder, and typed by what they hold.

A value in a DataFrame column is data, never an instruction to this machine: a scraped
or shared CSV holding ``/etc/passwd`` or ``~/.ssh/id_rsa`` must not make a row method
read those files and send them away. Every row method that reads a file named in a
column (`df.mistral.ocr`, `df.mistral.extract(image=...)`, `df.mistral.transcribe`) goes
through `confined`:

- a relative path is read from the working directory (as ``open`` reads it), and every
  path must resolve inside the root folder: the working directory, unless the method's
  ``root=`` names another (a wider one, for files kept elsewhere);
- ``~`` is not expanded, and a symlink counts where it leads: one whose target is
  outside the root is refused like the target itself;
- what a file is comes from its bytes (`kind_of`: a short table of signatures, recordings
  by `audio.audio_format`), not from its name: a file without an extension is text only
  when it decodes as UTF-8 with no NUL.

A refused row is not sent; its ``_error`` names the root folder and the ``root=``
argument. A path typed in a cell (``--file``, ``--image``, ``%mistral ocr PATH``) is the
user's own choice and is read wherever it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# (offset, signature, kind): what the first bytes of a file say it is.
SIGNATURES = (
    (0, b"%PDF-", "pdf"),
    (0, b"PK\x03\x04", "zip"),  # DOCX and PPTX are zip archives of XML parts
    (0, b"\x89PNG\r\n\x1a\n", "picture"),
    (0, b"\xff\xd8\xff", "picture"),  # JPEG
    (0, b"GIF87a", "picture"),
    (0, b"GIF89a", "picture"),
    (0, b"II*\x00", "picture"),  # TIFF, little-endian
    (0, b"MM\x00*", "picture"),  # TIFF, big-endian
    (8, b"WEBP", "picture"),  # after RIFF and a length
    (4, b"ftypavif", "picture"),
    (4, b"ftypheic", "picture"),
)


def kind_of(data: bytes) -> str | None:
    """``pdf``, ``zip``, ``picture``, ``audio`` or ``text`` as the bytes say; None otherwise."""
    from .audio import audio_format

    for offset, signature, kind in SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            return kind
    if audio_format(data) is not None:
        return "audio"
    if data[:2] == b"BM" and data[6:10] == b"\x00\x00\x00\x00":  # BMP: its reserved bytes are 0
        return "picture"
    return "text" if is_text(data) else None


def is_text(data: bytes) -> bool:
    """Whether `data` is UTF-8 text (a NUL says it is not, whatever decodes)."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def root_folder(root: Any = None) -> Path:
    """The folder paths from data must stay in: `root`, or the working directory."""
    where = Path(os.fspath(root)) if root is not None else Path.cwd()
    real = Path(os.path.realpath(where))
    if not real.is_dir():
        raise ConfigError(f"root={os.fspath(where)!r} is not a folder; give the folder that "
                          "holds the files the column names")
    return real


def confined(value: Any, root: Path, what: str, method: str) -> Path:
    """The real path of `value` (a path from a DataFrame), inside `root` (see the module's
    doc); `ConfigError` saying why not. `method` names the call for the fix (``ocr``)."""
    text = os.fspath(value)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\x00" in text:
        raise ConfigError(f"{what}: a path cannot hold a NUL character")
    path = Path(text)  # no expanduser: from data, "~" is a folder name like any other
    real = Path(os.path.realpath(path if path.is_absolute() else Path.cwd() / path))
    if not real.is_relative_to(root):
        raise ConfigError(
            f"{what}: {text!r} is outside the root folder {root} (paths from a DataFrame are read "
            f"only inside it); to read files elsewhere pass df.mistral.{method}(..., "
            "root='/folder/that/holds/them')")
    if not real.is_file():
        tilde = " (~ is not expanded in paths from a DataFrame)" if text.startswith("~") else ""
        raise ConfigError(f"{what}: no file {text!r} in the root folder {root}{tilde}")
    return real
