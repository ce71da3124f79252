"""A known fake key goes through a whole notebook; it must appear nowhere afterwards."""

from __future__ import annotations

import json

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from mistral_magic.offline import OfflineServer

KEY = "sk-FAKE-7f3a9c1e5b2d4068aa11-never-show-me"


def test_key_never_leaks(tmp_path, monkeypatch):
    # A real server that accepts exactly this key stands in for a self-hosted deployment,
    # so the key is used for real requests and must still never be shown.
    with OfflineServer(api_key=KEY) as server:
        # The same key as La Plateforme's and the server's: it must leak through neither.
        monkeypatch.setenv("MISTRAL_API_KEY", KEY)
        monkeypatch.setenv("MISTRAL_SERVER_KEY", KEY)
        cells = [
            "%load_ext mistral_magic",
            f"%config MistralMagics.server_url = {server.url!r}",
            "%%mistral\nHello, who are you?",
            "%%mistral --no-stream -o answer\nAnd a follow-up.",
            "%%mistral -m mistral-embed\nThis one fails (the server refuses it a chat).",
            "%%mistral --dry-run\nWhat would this send?",
            "%mistral config",
            "%mistral backend",
            "%mistral history",
            "%mistral usage",
            "import mistral_magic\ns = mistral_magic.session()\nprint(repr(s), repr(s.backend), s.backend.client)",
            "print(s.ledger.to_frame().to_json(), s.chats.get('default').export())",
            "%config MistralMagics",
            "import logging\nlogging.getLogger().handlers",
        ]
        nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        saved = tmp_path / "secrets.ipynb"
        nbformat.write(nb, saved)

    text = saved.read_text()
    assert KEY not in text
    assert KEY[3:20] not in text  # nor a recognisable part of it
    # every output and its metadata, searched as data rather than as the file's escaping
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert KEY not in json.dumps(output)
    # the cells really ran and reached the server with the key
    answers = [o for c in nb.cells for o in c.get("outputs", [])
               if "mistral_magic" in o.get("metadata", {})]
    assert len(answers) >= 2 and all(a["metadata"]["mistral_magic"]["backend"] == "self-hosted"
                                     for a in answers)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and "mistral-embed" in errors[0]["evalue"]
    config = "".join(json.dumps(o) for o in nb.cells[6].outputs)
    assert "chars)" in config  # the key is shown only masked


def test_no_key_reaches_the_store(ip, tmp_path, monkeypatch):
    """Keys from the environment, `%mistral key` and a server key, even typed into prompts:
    none is in the store's file, its WAL, or an export, as it is or JSON-escaped."""
    import getpass

    import pandas as pd
    from conftest import run

    import mistral_magic

    env_key, typed_key, server_key = (f"sk-{name}-{KEY[7:]}" for name in ("ENV", "TYPED", "SERVER"))
    monkeypatch.setenv("MISTRAL_API_KEY", env_key)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": typed_key)
    ip.run_line_magic("mistral", "key")
    assert mistral_magic.session().key == typed_key
    with OfflineServer(api_key=server_key) as server:
        ip.run_line_magic("config", f"MistralMagics.server_url = {server.url!r}")
        ip.run_line_magic("config", f"MistralMagics.server_key = {server_key!r}")
        run(ip, f"%%mistral --max-tokens 60\nMy keys are {env_key} and {typed_key}.", cell_id="a")
        run(ip, f'%%mistral --json\nReturn {{"key": "{server_key}"}}', cell_id="b")
        df = pd.DataFrame({"text": [f"Ada is 36, key {typed_key}", f"Bob is 41, key {env_key}"]})
        df.mistral.extract("{text}", schema="name, age int", progress=False)
        turns = mistral_magic.session().chats.get("default").turns
        assert env_key.lower() in turns[0].answer  # the answer did echo a key, lower-cased
        ip.run_line_magic("mistral", "cache export answers.sqlite --all")
        folder = tmp_path / ".mistral_magic"
        files = [folder / "store.sqlite", folder / "store.sqlite-wal", tmp_path / "answers.sqlite"]
        assert all(f.exists() for f in files[::2]) and files[1].stat().st_size > 0
        written = b"".join(f.read_bytes() for f in files)
        assert b"[redacted]" in written  # the keys were there to leak, and were redacted
        for key in (env_key, typed_key, server_key):
            for form in (key, key[3:20], json.dumps(key), key.lower()):
                assert form.encode() not in written, form
        assert b"authorization" not in written.lower() and b"bearer" not in written.lower()
