"""A number a file declares about itself is never a budget promise (OCR).

The hold is what the client measured (pages it counted from the content), and under a
budget the request carries a ``pages`` bound of exactly what was held, so a server that
counts more pages than the client cannot read (nor charge) more. Where nothing can be
measured (a Word document's pages are laid out by the server, a text file's too, a URL's
are unknown), a call under a budget needs ``--pages`` and is refused in one line without.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run
from offline_documents import picture, pptx, report_pdf, stale_docx

import mistral_magic
from mistral_magic.errors import BudgetExceeded

PER_PAGE = 0.004  # mistral-ocr-latest in prices.json


def session():
    return mistral_magic.session()


def ocr_records():
    return [r for r in session().ledger.records if r.kind == "ocr"]


def test_a_word_document_saying_one_page_cannot_spend_past_the_budget(ip, tmp_path, magic_server):
    (tmp_path / "report.docx").write_bytes(stale_docx(declared=1, pages=200))
    run(ip, "%config MistralMagics.budget_usd = 0.01")
    before = magic_server.request_count("/v1/ocr")
    result = run(ip, "%mistral ocr report.docx", ok=False)
    message = str(result.error_in_exec)
    assert "Refused" in message and "--pages" in message and "\n" not in message, message
    assert magic_server.request_count("/v1/ocr") == before and ocr_records() == []
    run(ip, "%mistral ocr report.docx --pages 0-1 -o r")
    assert ip.user_ns["r"].indices == [0, 1] and "Section 1" in ip.user_ns["r"].text
    assert [r.pages for r in ocr_records()] == [2]
    assert session().ledger.spent <= 0.01


def test_without_a_budget_a_word_document_is_read_whole_at_the_pages_read(ip, tmp_path):
    (tmp_path / "report.docx").write_bytes(stale_docx(declared=1, pages=5))
    run(ip, "%mistral ocr report.docx -o r")
    assert ip.user_ns["r"].indices == [0, 1, 2, 3, 4]
    assert [r.pages for r in ocr_records()] == [5]  # the server's count, not Word's "1"
    assert "pages" not in session().last.request


def test_a_column_of_such_documents_keeps_the_budget(ip, tmp_path):
    for i in range(3):
        (tmp_path / f"r{i}.docx").write_bytes(stale_docx(declared=1, pages=60))
    df = pd.DataFrame({"path": [f"r{i}.docx" for i in range(3)]})
    run(ip, "%config MistralMagics.budget_usd = 0.02")
    with pytest.raises(BudgetExceeded, match="pages="):
        df.mistral.ocr("path", progress=False)
    assert ocr_records() == []
    out = df.mistral.ocr("path", pages="0", progress=False)
    assert out["_error"].isna().all() and out["pages"].tolist() == [1, 1, 1]
    assert session().ledger.spent <= 0.02


@pytest.mark.parametrize("name, make, held", [
    ("report.pdf", lambda: report_pdf(3), 3),
    ("deck.pptx", lambda: pptx(["One", "Two", "Three"], declared=1), 3),
    ("scan.png", lambda: picture(60, 40), 1),
], ids=["pdf", "pptx", "picture"])
def test_under_a_budget_a_file_is_bounded_on_the_wire_by_what_was_held(ip, tmp_path, name, make,
                                                                       held):
    (tmp_path / name).write_bytes(make())
    run(ip, "%config MistralMagics.budget_usd = 1.0")
    run(ip, f"%mistral ocr {name}")
    assert session().last.request["pages"] == list(range(held))
    assert [r.pages for r in ocr_records()] == [held]
    df = pd.DataFrame({"path": [name]})
    out = df.mistral.ocr("path", progress=False)
    assert out["_error"].isna().all() and out["pages"].tolist() == [held]
    assert [r.pages for r in ocr_records()] == [held, held]


@pytest.mark.parametrize("name, data", [
    ("report.docx", stale_docx(declared=1, pages=3)),
    ("notes.txt", ("line\n" * 200).encode()),
], ids=["docx", "text"])
def test_under_a_budget_what_cannot_be_measured_needs_pages(ip, tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    run(ip, "%config MistralMagics.budget_usd = 1.0")
    message = str(run(ip, f"%mistral ocr {name}", ok=False).error_in_exec)
    assert "Refused" in message and name in message and "--pages" in message, message
    assert "URL" not in message  # said for what it is, not as if it were a URL
    run(ip, f"%mistral ocr {name} --pages 0")
    assert session().last.request["pages"] == [0] and [r.pages for r in ocr_records()] == [1]


def test_a_document_with_no_pages_counted_is_refused_not_sent_unbounded(ip, tmp_path, magic_server):
    from pypdf import PdfWriter

    with open(tmp_path / "empty.pdf", "wb") as out:
        PdfWriter().write(out)  # a page tree with no pages: nothing to bound the server by
    run(ip, "%config MistralMagics.budget_usd = 1.0")
    before = magic_server.request_count("/v1/ocr")
    message = str(run(ip, "%mistral ocr empty.pdf", ok=False).error_in_exec)
    assert "empty.pdf has no pages that could be counted here" in message
    assert magic_server.request_count("/v1/ocr") == before
    with pytest.raises(mistral_magic.errors.ConfigError, match="name at least one page"):
        pd.DataFrame({"path": ["empty.pdf"]}).mistral.ocr("path", pages=[], progress=False)
