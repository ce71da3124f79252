"""The one call path: a cell, the chat panel and a row record a call the same way, and
one re-ask loop, bounded by `MistralMagics.reasks`, serves cells and rows alike."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic import widgets


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def test_one_failure_is_the_same_ledger_line_from_a_cell_the_panel_and_a_row(ip, session,
                                                                             magic_server):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"error_status": 503})
    assert not run(ip, "%%mistral\nA cell that fails.", ok=False).success
    panel = widgets.ChatPanel(session, "side")
    panel.send("A panel message that fails.")
    assert panel.wait(30).status == "error"
    panel.close()
    out = pd.DataFrame({"text": ["A row that fails."]}).mistral.extract(
        "{text}", schema="name", progress=False)
    records = session.ledger.records
    assert [(r.kind, r.status) for r in records] == [("chat", "error")] * 2 + [("extract", "error")]
    assert len({r.error for r in records}) == 1  # one line, whoever sent the call
    assert "503" in records[0].error and "max_retries" in records[0].error
    assert out["_error"][0] == records[0].error


@pytest.mark.parametrize("reasks", [0, 2])
def test_reasks_bounds_how_often_a_cell_asks_again(ip, session, magic_server, capsys, reasks):
    ip.run_line_magic("config", f"MistralMagics.reasks = {reasks}")
    magic_server.set_faults({"bad_json_rate": 1.0})
    assert not run(ip, '%%mistral --schema "name, age int"\nAlice is 31.', ok=False).success
    assert len(session.ledger.records) == 1 + reasks
    said = "after 0 re-asks" if reasks == 0 else "after 2 re-asks"
    out = capsys.readouterr()
    assert said in out.out + out.err
    sent = session.last.request["messages"]
    assert len(sent) == 1 + 2 * reasks  # each re-ask carries the answer before it and why


def test_reasks_bounds_how_often_a_row_asks_again(ip, session, magic_server):
    ip.run_line_magic("config", "MistralMagics.reasks = 2")
    magic_server.set_faults({"bad_json_rate": 1.0})
    df = pd.DataFrame({"text": ["Alice is 31.", "Bob is 45."]})
    out = df.mistral.extract("{text}", schema="name, age int", progress=False)
    assert out["_error"].str.contains("not valid JSON").all()
    assert len(session.ledger.records) == 6  # each row asked three times


def test_reasks_must_not_be_negative(session):
    with pytest.raises(UsageError, match="reasks must be 0 or more"):
        session.settings.reasks = -1
    assert session.settings.reasks == 1
