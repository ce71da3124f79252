"""Which stored answers this user wrote: each is signed with a key that never leaves the machine.

A store is a file, and a file can come from anywhere: an export a teacher shipped, a
store another machine wrote, an edited copy. What a stored answer says must not choose
what the notebook runs, so every answer this user's kernels store is signed (an HMAC
of its request key and its response as stored) with a random key kept outside every
store, in ``$XDG_CONFIG_HOME/mistral_magic/answers.key`` (``~/.config/...`` when that
variable is unset; readable by its owner only). An answer whose signature checks is
*local*; any other is *foreign*: imported (``%mistral cache import`` never copies
signatures), written by another machine or user, older than signatures, or edited.

Nothing in a file can make its answers local: the signature is checked here, with a
key the file never held. Where the key file cannot be made (a read-only home), a key
for this process alone is used, so answers stored before count as foreign.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FILENAME = "answers.key"
KEY_BYTES = 32


def key_path() -> Path:
    """Where this user's signing key is kept (the standard library's idea of the config folder)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "mistral_magic" / FILENAME


class Signer:
    """Signs answers as this user's and checks signatures; the key is read on first use."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def sign(self, key: str, response: str) -> str:
        """The signature of the answer `response` (as stored) to the request `key`."""
        message = key.encode() + b"\0" + response.encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()

    def verify(self, key: str, response: str, signature: str | None) -> bool:
        """Whether this user signed exactly this answer to exactly this request."""
        if not isinstance(signature, str) or not signature:
            return False
        return hmac.compare_digest(self.sign(key, response), signature)

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = _load_or_make(self.path or key_path())
            return self._key


def _load_or_make(path: Path) -> bytes:
    """The key in `path`, made there first (atomically, owner-only) when there is none."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return _ephemeral(path, exc)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(KEY_BYTES).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(partial, path)  # fails if another kernel made it first: theirs is kept
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
        return _read(path)
    except OSError as exc:
        return _ephemeral(path, exc)


def _read(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES // 2:
        raise OSError(f"{path} holds no key")
    return key


def _ephemeral(path: Path, exc: BaseException) -> bytes:
    log.warning("mistral_magic: cannot keep the answers' signing key in %s (%s); answers stored "
                "by earlier kernels count as foreign", path, exc)
    return os.urandom(KEY_BYTES)
