"""OCR in a cell (%mistral ocr) and over a column (df.mistral.ocr): pages, tables, fields, prices."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run
from offline_documents import invoice_pdf, picture, report_pdf

import mistral_magic
from mistral_magic.errors import BudgetExceeded

PER_PAGE, PER_ANNOTATED = 0.004, 0.005  # mistral-ocr-latest in prices.json
FIELDS = "number, customer, total float"
NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson"]


def session():
    return mistral_magic.session()


def ocr_records():
    return [r for r in session().ledger.records if r.kind == "ocr"]


def shown(ip) -> str:
    return json.dumps([f["data"] for f in ip.display_pub.finals()])


@pytest.fixture
def docs(tmp_path):
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    (tmp_path / "report.pdf").write_bytes(report_pdf(3))
    (tmp_path / "scan.png").write_bytes(picture(120, 80))
    return tmp_path


def test_a_document_is_read_into_rendered_pages_priced_per_page(ip, docs):
    run(ip, "%mistral ocr invoice.pdf -o r")
    result = ip.user_ns["r"]
    assert "Invoice INV-2041" in result.text and result.indices == [0]
    [record] = ocr_records()
    assert record.pages == 1 and record.prompt_tokens == 0 and record.completion_tokens == 0
    assert record.cost == pytest.approx(PER_PAGE)
    out = shown(ip)
    assert "Invoice INV-2041" in out and "1 page" in out and " in / " not in result.footer
    assert session().ledger.to_frame()["pages"].tolist() == [1]


def test_pages_pick_and_count_what_is_read(ip, docs):
    run(ip, "%mistral ocr report.pdf --pages 0,2 -o r")
    assert ip.user_ns["r"].indices == [0, 2]
    assert ocr_records()[0].cost == pytest.approx(2 * PER_PAGE)
    for pages, said in [("5", "has 3 pages (0-2); page 5"), ("2-1", "runs backwards"),
                        ("x", "give page numbers")]:
        result = run(ip, f"%mistral ocr report.pdf --pages {pages}", ok=False)
        assert said in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
    assert len(ocr_records()) == 1


def test_a_name_holding_the_bytes_is_read(ip, docs):
    run(ip, "import pathlib; data = pathlib.Path('invoice.pdf').read_bytes()")
    run(ip, "%mistral ocr data -o r")
    assert "Ada Lovelace" in ip.user_ns["r"].text and ip.user_ns["r"].name == "data"


def test_a_picture_gets_the_offline_placeholder(ip, docs):
    run(ip, "%mistral ocr scan.png -o r")
    assert "cannot recognise text in pictures" in ip.user_ns["r"].text
    assert ocr_records()[0].pages == 1


def test_schema_gives_a_typed_one_row_frame_at_the_annotated_price(ip, docs):
    run(ip, f"%mistral ocr invoice.pdf --schema '{FIELDS}' -o inv")
    frame = ip.user_ns["inv"]
    assert list(frame.columns) == ["number", "customer", "total"] and len(frame) == 1
    assert str(frame["total"].dtype) == "float64" and frame["total"][0] == 39.0
    assert frame["customer"][0] == "Ada Lovelace"
    assert ocr_records()[0].cost == pytest.approx(PER_ANNOTATED)


def test_tables_become_data_frames(ip, docs):
    run(ip, "%mistral ocr invoice.pdf --tables -o tables")
    [table] = ip.user_ns["tables"]
    assert list(table.columns) == ["Item", "Qty", "Price"]
    assert table["Item"].tolist() == ["Widget", "Gadget"] and table["Price"].tolist() == [9.5, 20.0]


def test_page_text_is_rendered_safely(ip, docs):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "<script>alert(1)</script> <img src=x onerror=alert(2)>")
    (docs / "evil.pdf").write_bytes(bytes(pdf.output()))
    run(ip, "%mistral ocr evil.pdf")
    html = "".join(f["data"].get("text/html", "") for f in ip.display_pub.finals())
    assert "alert(1)" in html and "<script" not in html and "<img" not in html


def test_a_budget_is_held_before_anything_is_uploaded(ip, docs):
    run(ip, f"%config MistralMagics.budget_usd = {PER_PAGE * 2.5}")
    result = run(ip, "%mistral ocr report.pdf", ok=False)
    assert "Refused" in str(result.error_in_exec) and "--pages" in str(result.error_in_exec)
    assert session().uploads.uploaded == 0 and ocr_records() == []
    run(ip, "%mistral ocr report.pdf --pages 0-1")
    assert ocr_records()[0].pages == 2
    result = run(ip, "%mistral ocr https://example.com/a.pdf", ok=False)
    assert "not known before it is read" in str(result.error_in_exec)


def test_a_url_the_server_cannot_fetch_is_a_one_line_error_costing_nothing(ip, docs):
    result = run(ip, "%mistral ocr https://example.com/a.pdf", ok=False)
    assert "\n" not in str(result.error_in_exec)
    [record] = ocr_records()
    assert record.status == "error" and record.cost == 0 and record.pages == 0


def test_replaying_never_sends_an_ocr_call(ip, docs, magic_server):
    before = magic_server.request_count("/v1/ocr")
    run(ip, "%config MistralMagics.cache = 'replay'")
    result = run(ip, "%mistral ocr invoice.pdf", ok=False)
    assert "never sends" in str(result.error_in_exec)
    assert magic_server.request_count("/v1/ocr") == before and ocr_records() == []


def test_a_model_that_cannot_read_is_refused(ip, docs):
    result = run(ip, "%mistral ocr invoice.pdf -m mistral-small-latest", ok=False)
    assert "cannot read documents with OCR" in str(result.error_in_exec)
    assert "mistral-ocr" in str(result.error_in_exec)


# -- over a column ----------------------------------------------------------------------------


def invoices(docs, n=4) -> pd.DataFrame:
    paths = []
    for i in range(n):
        path = docs / f"inv{i}.pdf"
        path.write_bytes(invoice_pdf(number=f"INV-{i}", customer=NAMES[i], total=f"{10 + i}.00"))
        paths.append(str(path))
    return pd.DataFrame({"path": paths}, index=[f"r{i}" for i in range(n)])


def test_a_column_is_read_row_by_row_typed_and_aligned(ip, docs):
    paths = invoices(docs)["path"].tolist()
    index = ["r0", "r1", "r2", "r3", "bytes", "gone", "empty"]
    df = pd.DataFrame({"path": pd.Series(
        [*paths, invoice_pdf(number="INV-B", customer="Hedy Lamarr"), "missing.pdf", None],
        index=index, dtype=object)})
    out = df.mistral.ocr("path", schema=FIELDS, progress=False)
    assert list(out.index) == list(df.index)
    assert str(out["total"].dtype) == "float64"
    assert out.loc["r2", "customer"] == "Alan Turing" and out.loc["r2", "total"] == 12.0
    assert out.loc["bytes", "customer"] == "Hedy Lamarr"
    assert "no file" in out.loc["gone", "_error"] and "missing" in out.loc["empty", "_error"]
    assert len(ocr_records()) == 5
    assert sum(r.cost for r in ocr_records()) == pytest.approx(5 * PER_ANNOTATED)
    text = df.iloc[:2].mistral.ocr("path", progress=False)
    assert list(text.columns) == ["text", "pages", "_error"] and text["pages"].tolist() == [1, 1]
    assert "Ada Lovelace" in text["text"].iloc[0]


def test_rows_read_side_by_side_upload_each_content_once(ip, docs, magic_server):
    """Concurrent rows that share a document (by the same path, another spelling of it, or a
    copy under another name) upload it once, however their uploads interleave."""
    (docs / "copy.pdf").write_bytes(invoice_pdf())
    paths = ["invoice.pdf"] * 6 + ["./invoice.pdf", "copy.pdf", "report.pdf", "invoice.pdf"]
    df = pd.DataFrame({"path": paths})
    uploads = magic_server.request_count("/v1/files")
    out = df.mistral.ocr("path", progress=False, concurrency=8)
    assert out["_error"].isna().all(), out["_error"].tolist()
    assert out["pages"].tolist() == [1] * 8 + [3, 1]
    assert session().uploads.uploaded == 2 and magic_server.request_count("/v1/files") == uploads + 2
    assert len(ocr_records()) == 10


def test_faults_are_row_errors_and_a_rerun_resumes(ip, docs, magic_server):
    df = invoices(docs)
    magic_server.set_faults({"error_status": 500, "error_rate": 1.0})
    out = df.mistral.ocr("path", schema=FIELDS, progress=False, max_retries=0)
    assert out["_error"].notna().all() and all(r.cost == 0 for r in ocr_records())
    magic_server.set_faults(None)
    before = magic_server.request_count("/v1/ocr")
    out = df.mistral.ocr("path", schema=FIELDS, progress=False)
    assert out["_error"].isna().all() and magic_server.request_count("/v1/ocr") == before + 4
    again = df.mistral.ocr("path", schema=FIELDS, progress=False)
    assert magic_server.request_count("/v1/ocr") == before + 4  # all from the resume cache
    pd.testing.assert_frame_equal(out, again)


def test_the_budget_is_a_hard_cap_over_a_column(ip, docs):
    df = invoices(docs)
    run(ip, f"%config MistralMagics.budget_usd = {PER_ANNOTATED * 2.5}")
    with pytest.raises(BudgetExceeded):
        df.mistral.ocr("path", schema=FIELDS, progress=False)
    assert ocr_records() == []
    out = df.iloc[:2].mistral.ocr("path", schema=FIELDS, progress=False)
    assert out["_error"].isna().all()
    assert session().ledger.spent <= PER_ANNOTATED * 2.5
    urls = pd.DataFrame({"path": ["https://example.com/a.pdf"]})
    with pytest.raises(BudgetExceeded, match="not known before it is read"):
        urls.mistral.ocr("path", progress=False)


def test_batch_reads_a_column_at_the_batch_price(ip, docs, magic_server):
    df = invoices(docs, 3)
    out = df.mistral.ocr("path", schema=FIELDS, progress=False, batch=True)
    jobs = magic_server.request_count("/v1/batch/jobs")
    again = df.mistral.ocr("path", schema=FIELDS, progress=False, batch=True)
    pd.testing.assert_frame_equal(out, again)  # from the resume cache: no second job
    assert magic_server.request_count("/v1/batch/jobs") == jobs
    assert out["_error"].isna().all() and out["customer"].tolist() == NAMES[:3]
    records = [r for r in session().ledger.records if r.batch]
    assert len(records) == 3 and all(r.pages == 1 for r in records)
    discount = session().prices.batch_discount
    assert sum(r.cost for r in records) == pytest.approx(3 * PER_ANNOTATED * discount)
