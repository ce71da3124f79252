"""Where a completion goes, and with which key: the kernel's rules, read in the notebook's folder.

- the La Plateforme key is ``MISTRAL_API_KEY`` from the server's environment, else from
  a ``.env`` file beside the notebook (as the notebook's kernel reads it), and it is
  sent only to Mistral's own hosts over https;
- a self-hosted ``server_url`` gets ``MISTRAL_SERVER_KEY`` (or nothing), never that key;
- no key (``backend = "auto"``), or ``backend = "offline"``: the offline server, started
  in this process on first use. Its FIM answers say they are offline.

A key set in a kernel with ``%mistral key`` lives in that kernel only: the server
cannot see it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SERVERS = {
    "global": "https://api.mistral.ai",
    "eu": "https://api.eu.mistral.ai",
    "us": "https://api.us.mistral.ai",
}
MISTRAL_HOSTS = frozenset(urlsplit(url).hostname for url in SERVERS.values())


class BackendError(Exception):
    """A setting or key problem, said in one line with its fix."""


@dataclass(frozen=True)
class Target:
    """A resolved backend: its kind, URL and key (never shown)."""

    kind: str  # "mistral" | "self-hosted" | "offline"
    url: str
    key: str | None

    def __repr__(self) -> str:
        return f"Target({self.kind!r}, {self.url!r})"


def platform_key(folder: Path) -> str | None:
    """MISTRAL_API_KEY from the environment, else from ``folder/.env``."""
    key = os.environ.get("MISTRAL_API_KEY", "").strip()
    if key:
        return key
    env_file = folder / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        key = (dotenv_values(env_file).get("MISTRAL_API_KEY") or "").strip()
    return key or None


def is_mistral_host(url: str) -> bool:
    """Whether `url` is one of Mistral's API hosts over https (where its key may go)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and parts.hostname in MISTRAL_HOSTS
            and port in (None, 443) and parts.username is None)


def resolve(settings, folder: Path) -> Target:
    """The target for a completion asked in `folder` (`BackendError` when it cannot go)."""
    if settings.backend == "offline":
        return offline_target()
    if settings.server_url:
        url = settings.server_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise BackendError(f"MistralCompletion.server_url {url!r} is not an http(s) URL")
        if not is_mistral_host(url):
            server_key = os.environ.get("MISTRAL_SERVER_KEY", "").strip() or None
            return Target("self-hosted", url, server_key)
        key = platform_key(folder)
        if key is None:
            raise BackendError(f"{url} needs a key: set MISTRAL_API_KEY or put it in a .env file "
                               "beside the notebook")
        return Target("mistral", url, key)
    key = platform_key(folder)
    if key is None:
        if settings.backend == "mistral":
            raise BackendError("No Mistral API key for completions: set MISTRAL_API_KEY, put it "
                               "in a .env file beside the notebook, or set "
                               "MistralCompletion.backend = 'offline'")
        return offline_target()
    return Target("mistral", SERVERS[settings.server], key)


_offline_lock = threading.Lock()
_offline = None


def offline_target() -> Target:
    """The process's offline server (started on first use, kept for the process's life)."""
    global _offline
    with _offline_lock:
        if _offline is None:
            from mistral_magic.offline import OfflineServer

            _offline = OfflineServer().start()
    return Target("offline", _offline.url, _offline.api_key)
