"""The JupyterLab server extension (`lab/mistral_magic_lab`) in a real `jupyter lab`.

Completions go to an offline server in this process (as a self-hosted `server_url`,
with MISTRAL_SERVER_KEY), so the tests can slow it down and count what it received.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
from browser_lab import Lab

from mistral_magic.offline import OfflineServer
from mistral_magic.store import Store

FIM = "/v1/fim/completions"
DEF_MEAN = {"prefix": "def mean(values):", "suffix": "", "path": "work/analysis.ipynb",
            "above": ["import statistics", "data = [1, 2, 3]"]}


@pytest.fixture(scope="module")
def fim_server():
    with OfflineServer() as server:
        yield server


def start_lab(base: Path, server: OfflineServer, *args: str) -> Lab:
    lab = Lab(base, args=(f"--MistralCompletion.server_url={server.url}", *args),
              env={"MISTRAL_SERVER_KEY": server.api_key})
    (lab.root / "work").mkdir()
    lab.wait_ready()
    return lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory, fim_server):
    server = start_lab(tmp_path_factory.mktemp("lab-server"), fim_server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_faults(fim_server):
    yield
    fim_server.set_faults(None)


def post(lab: Lab, body, token: bool = True, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.port}/mistral-magic/completion", method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"token {lab.token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {"body": error.read().decode(errors="replace")}


def ledger(lab: Lab, folder: str = "work"):
    with Store(lab.root / folder / ".mistral_magic" / "store.sqlite") as store:
        return store.ledger.frame()


def test_a_completion_fills_the_code_and_is_a_ledger_row_of_its_folder(lab, fim_server, ip):
    before = fim_server.request_count(FIM)
    status, reply = post(lab, DEF_MEAN)
    assert status == 200 and reply["status"] == "ok", reply
    assert "offline completion by codestral-latest" in reply["completion"]
    assert "return result" in reply["completion"]
    assert reply["backend"] == "self-hosted" and reply["cost"] > 0
    assert reply["spent_today"] >= reply["cost"] and reply["cap_usd"] == 0.5
    assert fim_server.request_count(FIM) == before + 1
    rows = ledger(lab)
    row = rows[rows["kind"] == "completion"].iloc[-1]
    assert row["session"] == "jupyterlab" and row["status"] == "ok"
    assert row["cost"] == pytest.approx(reply["cost"]) and row["prompt_tokens"] > 0
    # The kernel of a notebook in that folder counts it in `%mistral usage --all`.
    ip.run_line_magic("config", f"MistralMagics.cache_path = {str(lab.root / 'work' / '.mistral_magic')!r}")
    usage = ip.run_line_magic("mistral", "usage --all")
    assert "completion" in set(usage["kind"]) and "jupyterlab" in set(usage["session"])


def test_the_code_above_goes_first_bounded_by_tokens(lab):
    above = ["x = 1", "# " + "many words " * 2000]  # nearest first; the far one is too big
    status, reply = post(lab, {**DEF_MEAN, "above": above})
    rows = ledger(lab)
    small = rows[rows["kind"] == "completion"].iloc[-1]["prompt_tokens"]
    assert status == 200 and reply["status"] == "ok"
    assert small < 100, "the cell past context_tokens was sent"
    status, reply = post(lab, {**DEF_MEAN, "above": above[:1], "prefix": "x = 1\n\n" + "y" * 10})
    assert reply["status"] == "ok"


def test_without_the_token_every_route_is_refused(lab):
    status, reply = post(lab, DEF_MEAN, token=False)
    assert status == 403, reply
    request = urllib.request.Request(f"http://127.0.0.1:{lab.port}/mistral-magic/status")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    refused.value.close()
    assert refused.value.code == 403


@pytest.mark.parametrize("body, says", [
    ({"suffix": "", "path": "a.ipynb"}, "prefix and suffix"),
    ({"prefix": "x", "suffix": ""}, "path is the notebook's path"),
    ({"prefix": "x", "path": "a.ipynb", "above": "import os"}, "above is a list"),
    ({"prefix": "x", "path": "../../etc/a.ipynb"}, "not inside the server's root"),
    ({"prefix": "x", "path": "/etc/a.ipynb"}, "not inside the server's root"),
])
def test_a_bad_request_is_a_400_saying_what_to_send(lab, body, says):
    status, reply = post(lab, body)
    assert status == 400 and says in reply["body"]


def test_a_browser_that_goes_away_cancels_its_completion(lab, fim_server):
    fim_server.set_faults({"latency_ms": 30_000})
    before, sent = len(ledger(lab)), fim_server.request_count(FIM)
    # The browser aborts a stale request: the connection closes before the answer.
    with socket.create_connection(("127.0.0.1", lab.port)) as sock:
        body = json.dumps({**DEF_MEAN, "prefix": "def gone(values):"}).encode()
        sock.sendall(
            f"POST /mistral-magic/completion HTTP/1.1\r\nHost: 127.0.0.1:{lab.port}\r\n"
            f"Authorization: token {lab.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 60
        while fim_server.request_count(FIM) == sent:
            assert time.monotonic() < deadline, "the completion never reached the offline server"
            time.sleep(0.05)  # until the FIM call is under way at the offline server
    rows = _wait_for_rows(lab, before + 1)
    row = rows.iloc[-1]
    # Cancelled while the offline server still held it (30 s): its prompt counted, no answer.
    assert row["status"] == "interrupted" and row["completion_tokens"] == 0
    assert row["prompt_tokens"] > 0 and row["cost"] > 0


def test_a_newer_request_for_the_same_notebook_supersedes_the_older(lab, fim_server):
    fim_server.set_faults({"latency_ms": 1500})

    async def both():
        async with httpx.AsyncClient(headers={"Authorization": f"token {lab.token}"},
                                     timeout=60) as client:
            url = f"http://127.0.0.1:{lab.port}/mistral-magic/completion"
            first = asyncio.ensure_future(client.post(url, json=DEF_MEAN))
            while fim_server.request_count(FIM) == _count_at_start:
                await asyncio.sleep(0.02)  # the first one has reached the offline server
            second = await client.post(url, json={**DEF_MEAN, "prefix": "def total(values):"})
            return (await first).json(), second.json()

    _count_at_start = fim_server.request_count(FIM)
    first, second = asyncio.run(both())
    assert first == {"completion": "", "status": "superseded"}
    assert second["status"] == "ok" and "Total" in second["completion"]


def test_past_the_daily_cap_completions_are_refused_and_nothing_is_sent(tmp_path, fim_server):
    lab = start_lab(tmp_path, fim_server, "--MistralCompletion.daily_cap_usd=0.00002")
    try:
        status, reply = post(lab, DEF_MEAN)  # its worst case is held: more than the cap
        assert status == 200 and reply["status"] == "refused"
        assert "MistralCompletion.daily_cap_usd" in reply["reason"] and not reply["completion"]
        assert not (lab.root / "work" / ".mistral_magic").exists()
    finally:
        lab.stop()


def test_todays_spend_in_the_folders_ledger_counts_against_the_cap(tmp_path, fim_server):
    lab = start_lab(tmp_path, fim_server, "--MistralCompletion.daily_cap_usd=0.01")
    try:
        # An earlier server's completions today, in the folder's ledger.
        with Store(lab.root / "work" / ".mistral_magic" / "store.sqlite") as store:
            store.ledger.append([{"model": "codestral-latest", "kind": "completion",
                                  "cost": 0.00996, "status": "ok"}], session="jupyterlab")
        status, reply = post(lab, DEF_MEAN)
        assert reply["status"] == "refused" and reply["spent_today"] == pytest.approx(0.00996)
        status, reply = post(lab, {**DEF_MEAN, "path": "elsewhere.ipynb"})
        assert reply["status"] == "refused", "the cap is the server's, across folders"
    finally:
        lab.stop()


def _wait_for_rows(lab: Lab, count: int):
    deadline = time.monotonic() + 60
    while True:
        rows = ledger(lab)
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"no ledger row for the cancelled completion:\n{lab.log()}")
        time.sleep(0.1)  # the server writes the row as the cancellation lands


# -- which key goes where (the kernel's rules, read in the notebook's folder) ---------------


@pytest.fixture
def backends(monkeypatch):
    import sys

    from browser_lab import LAB_PACKAGE

    monkeypatch.syspath_prepend(str(LAB_PACKAGE))  # this checkout's server extension
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_KEY", raising=False)
    sys.modules.pop("mistral_magic_lab.backends", None)
    from mistral_magic_lab import backends
    from mistral_magic_lab.settings import MistralCompletion

    return backends, MistralCompletion


def test_the_key_beside_the_notebook_goes_only_to_la_plateforme(backends, tmp_path, monkeypatch):
    backends, Settings = backends
    (tmp_path / ".env").write_text("MISTRAL_API_KEY=key-from-dotenv\n")
    target = backends.resolve(Settings(), tmp_path)
    assert (target.kind, target.url, target.key) == ("mistral", "https://api.mistral.ai",
                                                    "key-from-dotenv")
    assert "key-from-dotenv" not in repr(target)
    assert backends.resolve(Settings(server="eu"), tmp_path).url == "https://api.eu.mistral.ai"
    # A self-hosted server gets its own key, never La Plateforme's.
    hosted = backends.resolve(Settings(server_url="http://gpu-box:8000/"), tmp_path)
    assert (hosted.kind, hosted.url, hosted.key) == ("self-hosted", "http://gpu-box:8000", None)
    monkeypatch.setenv("MISTRAL_SERVER_KEY", "server-key")
    assert backends.resolve(Settings(server_url="http://gpu-box:8000"), tmp_path).key == "server-key"
    # The environment's key comes first, as in the kernel.
    monkeypatch.setenv("MISTRAL_API_KEY", "key-from-environment")
    assert backends.resolve(Settings(), tmp_path).key == "key-from-environment"


def test_no_key_means_the_offline_server_or_a_one_line_fix(backends, tmp_path):
    backends, Settings = backends
    assert backends.resolve(Settings(), tmp_path).kind == "offline"
    with pytest.raises(backends.BackendError, match="MISTRAL_API_KEY"):
        backends.resolve(Settings(backend="mistral"), tmp_path)
    with pytest.raises(backends.BackendError, match="needs a key"):
        backends.resolve(Settings(server_url="https://api.mistral.ai"), tmp_path)
    with pytest.raises(backends.BackendError, match="not an http"):
        backends.resolve(Settings(server_url="ftp://x"), tmp_path)
