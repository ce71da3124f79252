"""A hold comes back however a call ends, also when it ends before anything is sent.

The budget holds a call's worst case before the call is built; whatever stops it between
that hold and the request going out (a document upload the server refuses, a file that
changed since the cell read it) must give the hold back and record nothing, or every
later cell is refused for the kernel's life. Prices are set high so a cent binds.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run
from offline_documents import invoice_pdf

import mistral_magic

MODEL = "mistral-small-latest"
PRICES = {MODEL: {"input": 100, "output": 300}}
FILES = "/v1/files"


@pytest.fixture
def session(ip, tmp_path):
    ip.run_line_magic("config", f"MistralMagics.prices = {PRICES!r}")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.5")
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    return mistral_magic.session()


def refuse_uploads(server) -> None:
    """Every request fails from here on; the test checks that the upload was the one that did."""
    server.set_faults({"error_status": 503})


def after_a_failure_the_whole_budget_is_there(ip, session, server) -> None:
    assert session.budget.reserved == 0 and session.budget.remaining() == 0.5
    server.set_faults(None)
    # Nearly the whole budget: refused if any of it were still held.
    run(ip, "%%mistral --max-tokens 1500\nAnd now a plain question.")
    last = session.last
    assert last.status == "ok" and not last.budget_capped and last.request["max_tokens"] == 1500
    assert session.budget.reserved == 0


def test_a_cell_whose_upload_fails_gives_its_hold_back(ip, session, magic_server):
    refuse_uploads(magic_server)
    uploads, chats = magic_server.request_count(FILES), magic_server.request_count("/v1/chat/completions")
    result = run(ip, "%%mistral --file invoice.pdf --max-tokens 1500\nWho is the customer?", ok=False)
    assert not result.success and "503" in str(result.error_in_exec)
    assert magic_server.request_count(FILES) == uploads + 1  # it failed at the upload...
    assert magic_server.request_count("/v1/chat/completions") == chats  # ...before sending
    assert session.ledger.records == []  # a call never sent records nothing
    after_a_failure_the_whole_budget_is_there(ip, session, magic_server)


def test_a_cell_whose_file_changed_since_it_was_read_gives_its_hold_back(ip, session, tmp_path,
                                                                         magic_server):
    path = tmp_path / "invoice.pdf"
    reserve = session.reserve

    def edited_while_held(*args, **kwargs):
        # The file is edited on disk just as the cell takes its hold (after reading it).
        held = reserve(*args, **kwargs)
        path.write_bytes(invoice_pdf(customer="Grace Hopper"))
        return held

    session.reserve = edited_while_held
    result = run(ip, "%%mistral --file invoice.pdf --max-tokens 1500\nWho is the customer?", ok=False)
    del session.reserve
    assert "changed since it was read" in str(result.error_in_exec)
    assert session.ledger.records == []
    after_a_failure_the_whole_budget_is_there(ip, session, magic_server)


def test_an_ocr_cell_whose_upload_fails_gives_its_hold_back(ip, session, magic_server):
    refuse_uploads(magic_server)
    uploads, reads = magic_server.request_count(FILES), magic_server.request_count("/v1/ocr")
    result = run(ip, "%mistral ocr invoice.pdf", ok=False)
    assert not result.success and "503" in str(result.error_in_exec)
    assert magic_server.request_count(FILES) == uploads + 1
    assert magic_server.request_count("/v1/ocr") == reads
    after_a_failure_the_whole_budget_is_there(ip, session, magic_server)


def test_ocr_rows_whose_upload_fails_give_their_holds_back(ip, session, magic_server):
    refuse_uploads(magic_server)
    uploads, reads = magic_server.request_count(FILES), magic_server.request_count("/v1/ocr")
    out = pd.DataFrame({"path": ["invoice.pdf"] * 3}).mistral.ocr("path", progress=False)
    assert out["_error"].str.contains("503").all()
    assert magic_server.request_count(FILES) > uploads
    assert magic_server.request_count("/v1/ocr") == reads
    assert all(r.cost == 0 for r in session.ledger.records)
    after_a_failure_the_whole_budget_is_there(ip, session, magic_server)


def test_a_batch_job_whose_upload_fails_gives_its_hold_back(ip, session, magic_server):
    refuse_uploads(magic_server)
    uploads, jobs = magic_server.request_count(FILES), magic_server.request_count("/v1/batch/jobs")
    frame = pd.DataFrame({"text": ["Ada, 36", "Grace, 85"]})
    with pytest.raises(Exception, match="503"):
        frame.mistral.extract("{text}", schema="name, age int", batch=True, progress=False)
    assert magic_server.request_count(FILES) == uploads + 1
    assert magic_server.request_count("/v1/batch/jobs") == jobs
    assert session.ledger.records == [] and not session.batch_holds
    after_a_failure_the_whole_budget_is_there(ip, session, magic_server)
