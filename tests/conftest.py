"""Shared fixtures: real offline servers on loopback, a fresh IPython shell per test."""

from __future__ import annotations

import atexit
from pathlib import Path

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from mistral_magic.offline import OfflineServer

REPO = Path(__file__).resolve().parent.parent


STORE_PLACES = [REPO / ".mistral_magic", REPO / "notebooks" / ".mistral_magic",
                REPO / "tests" / ".mistral_magic"]


@pytest.fixture(autouse=True)
def no_store_left_in_the_repository():
    """Every shell, kernel and notebook a test runs keeps its store in a temporary folder
    (the `ip` fixture's working directory, notebooks' temporary copies).

    Checked around each test, so a store is blamed on the test that made it; one that was
    there before (the shipped notebooks run in place, as the README's lab command invites)
    is the user's own and is left alone.
    """
    there = {place for place in STORE_PLACES if place.exists()}
    yield
    left = [str(place) for place in STORE_PLACES if place.exists() and place not in there]
    assert not left, (f"a store appeared in the repository during this test: {left} (a shell or "
                      "kernel ran there; tests keep theirs in a temporary folder)")


@pytest.fixture(scope="session")
def offline_server():
    """The real offline Mistral-compatible server on loopback, shared by the session."""
    with OfflineServer() as server:
        yield server


@pytest.fixture
def sdk(offline_server):
    """The unmodified official SDK pointed at the offline server."""
    from mistralai.client import Mistral

    with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
        yield client


class CapturingPublisher(DisplayPublisher):
    """Keeps every display message as a front end would receive it (updates included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages: list[dict] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.messages.append(
            {"data": dict(data), "metadata": dict(metadata or {}),
             "transient": dict(transient or {}), "update": update}
        )

    def clear_output(self, wait=False):
        self.messages.append({"clear": True})

    def finals(self) -> list[dict]:
        """The last state of each display: what nbclient or a front end ends with."""
        last: dict = {}
        order = []
        for i, msg in enumerate(self.messages):
            if "data" not in msg:
                continue
            key = msg["transient"].get("display_id") or f"anon-{i}"
            if key not in last:
                order.append(key)
            last[key] = msg
        return [last[k] for k in order]


@pytest.fixture
def magic_server():
    """The process's offline server that the extension uses; faults cleared after each test."""
    from mistral_magic.calls import backend

    server = backend.offline_server()
    server.set_faults(None)
    yield server
    server.set_faults(None)


def fresh_shell() -> InteractiveShell:
    """A new InteractiveShell whose history stays in memory (no thread, no file)."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    return InteractiveShell.instance(config=config)


def close_shell(shell: InteractiveShell) -> None:
    """Release a shell now, rather than in its atexit handler.

    Every shell registers handlers, and the shell's runs a full garbage collection: a
    hundred test shells kept the finished test run waiting half a minute before exiting.
    """
    atexit.unregister(shell.atexit_operations)
    atexit.unregister(shell.magics_manager.registry["ScriptMagics"].kill_bg_processes)
    shell.history_manager.end_session()
    shell.history_manager.db.close()
    InteractiveShell.clear_instance()


@pytest.fixture
def ip(monkeypatch, tmp_path, magic_server):
    """A fresh InteractiveShell with the extension loaded, offline, no key anywhere."""
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    shell = fresh_shell()
    shell.display_pub = CapturingPublisher()
    shell.run_line_magic("load_ext", "mistral_magic")
    yield shell
    shell.run_line_magic("unload_ext", "mistral_magic")
    close_shell(shell)


def run(shell, code: str, cell_id: str | None = None, ok: bool = True):
    """Run a cell as Jupyter would; fail the test on an unexpected error."""
    result = shell.run_cell(code, store_history=True, cell_id=cell_id)
    if ok and not result.success:
        raise AssertionError(f"cell failed: {result.error_in_exec or result.error_before_exec!r}")
    return result
