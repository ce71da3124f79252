"""OCR as the current models return it: blocks with boxes, confidence scores (low words marked for
review), tables as HTML or Markdown (HTML sanitised), headers and footers left out; in a cell
and over a column, through the real SDK and the real offline server."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run
from offline_documents import data_url, fine_print_pdf, invoice_pdf, report_pdf
from offline_spec import check_fixture, spec_fixture  # noqa: F401
from xss_corpus import PAYLOADS, problems

import mistral_magic
from mistral_magic.errors import ConfigError
from mistral_magic.rows import ocr_pages
from mistral_magic.show import render

PER_PAGE = 0.004  # mistral-ocr-latest (OCR 4.1) in prices.json: $4 per 1,000 pages


def session():
    return mistral_magic.session()


def ocr_records():
    return [r for r in session().ledger.records if r.kind == "ocr"]


def final_html(ip) -> str:
    return ip.display_pub.finals()[-1]["data"]["text/html"]


def final_plain(ip) -> str:
    return ip.display_pub.finals()[-1]["data"]["text/plain"]


@pytest.fixture
def docs(tmp_path):
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    (tmp_path / "report.pdf").write_bytes(report_pdf(3))
    (tmp_path / "notice.pdf").write_bytes(fine_print_pdf())
    return tmp_path


def test_blocks_come_back_as_a_frame_of_boxes(ip, docs):
    run(ip, "%mistral ocr invoice.pdf --blocks -o layout")
    layout = ip.user_ns["layout"]
    assert list(layout.columns) == ["page", "type", "x0", "y0", "x1", "y1", "content"]
    assert layout["type"].tolist() == ["title", "text", "image", "table", "text"]
    assert {str(layout[c].dtype) for c in ("page", "x0", "y0", "x1", "y1")} == {"Int64"}
    assert (layout["x1"] > layout["x0"]).all() and (layout["y1"] > layout["y0"]).all()
    assert layout["y0"].is_monotonic_increasing  # reading order, top to bottom
    assert layout.loc[0, "content"] == "Invoice INV-2041"
    assert layout.loc[3, "content"].startswith("| Item | Qty | Price |")
    # Sent as asked, priced per page as any OCR call.
    assert session().last.request["include_blocks"] is True
    [record] = ocr_records()
    assert record.pages == 1 and record.cost == pytest.approx(PER_PAGE)
    shown = final_html(ip)
    assert "Invoice INV-2041" in shown and "5 blocks in invoice.pdf" in shown
    assert not problems(shown, allow_style=True, allow_tags={"style"})  # pandas' own <style>


def test_block_scores_are_columns_of_the_blocks_frame(ip, docs):
    run(ip, "%mistral ocr report.pdf --pages 0 --blocks --confidence block -o layout")
    layout = ip.user_ns["layout"]
    assert list(layout.columns)[-3:] == ["confidence", "min_confidence", "type_confidence"]
    by_type = dict(zip(layout["type"], layout["confidence"], strict=True))
    # The running header and footer are small print; the body is read for certain.
    assert by_type["header"] == pytest.approx(0.62) and by_type["footer"] == pytest.approx(0.62)
    assert by_type["title"] == 1.0 and by_type["text"] == 1.0


def test_low_confidence_words_are_marked_for_review(ip, docs):
    run(ip, "%mistral ocr notice.pdf --confidence word -o notice")
    shown = final_html(ip)
    # Each word of the fine print is marked; the body is not.
    assert "<mark>restocking</mark>" in shown and "<mark>percent</mark>" in shown
    assert "<mark>Refunds</mark>" not in shown and "Refunds are paid" in shown
    assert "9 words under 80% confidence, marked" in shown
    assert not problems(shown, allow_style=True, allow_tags={"mark"})
    assert "⟦restocking⟧" in final_plain(ip) and "⟦Refunds⟧" not in final_plain(ip)
    words = ip.user_ns["notice"].scores()
    assert list(words.columns) == ["page", "text", "confidence", "start"]
    low = words[words["confidence"] < ocr_pages.LOW_CONFIDENCE]["text"].tolist()
    assert low == ["Fine", "print:", "a", "restocking", "fee", "of", "15", "percent", "applies."]
    # The positions are the server's: each points at its word in the page's Markdown.
    page = ip.user_ns["notice"].raw[0]["markdown"]
    assert all(page[s:s + len(t)] == t for t, s in zip(words["text"], words["start"], strict=True))


def test_page_scores_say_which_pages_to_check(ip, docs):
    run(ip, "%mistral ocr notice.pdf --confidence page -o notice")
    pages = ip.user_ns["notice"].scores()
    assert list(pages.columns) == ["page", "confidence", "min_confidence"]
    assert pages["min_confidence"].tolist() == [0.62] and 0.62 < pages["confidence"][0] < 1
    assert f"confidence {pages['confidence'][0]:.2f} (lowest 0.62)" in final_html(ip)
    # A result read without scores says how to get them (the file, not the name `notice`).
    run(ip, "%mistral ocr notice.pdf -o plain")
    with pytest.raises(ConfigError, match="--confidence"):
        ip.user_ns["plain"].scores()


def test_html_tables_are_sanitised_in_the_page_and_read_as_frames(ip, tmp_path):
    hostile = dict(PAYLOADS)["__xss1"]
    (tmp_path / "notice.pdf").write_bytes(fine_print_pdf(hostile))
    run(ip, "%mistral ocr notice.pdf --tables html -o notice")
    shown = final_html(ip)
    assert "<table>" in shown and "<td>Damaged item</td>" in shown
    assert not problems(shown, allow_style=True)
    assert "&lt;img src=x" in shown  # the cell's text is shown as text
    result = ip.user_ns["notice"]
    assert session().last.request["table_format"] == "html"
    assert "<table>" in result.text  # the text keeps the table where the page had it
    [table] = result.tables()
    assert table.columns.tolist() == ["Case", "Days"] and table["Days"].tolist() == [14, 7]
    assert table["Case"].tolist() == [hostile, "Damaged item"]


def test_the_renderer_sanitises_hostile_table_html():
    hostile = "".join(f"<tr><td>{text}</td></tr>" for _, text in PAYLOADS)
    bundle = render.document([("html", f"<table><tr><th>h</th></tr>{hostile}</table>"),
                              ("markdown", "a \ue000word\ue001 to check")])
    assert not problems(bundle["text/html"], allow_style=True, allow_tags={"mark"})
    assert "<table>" in bundle["text/html"] and "<mark>word</mark>" in bundle["text/html"]


def test_mark_characters_in_the_page_itself_mark_nothing():
    page = {"markdown": "plain \ue000sneaky\ue001 words", "confidence_scores": {
        "word_confidence_scores": [{"text": "plain", "confidence": 1.0, "start_index": 0},
                                   {"text": " words", "confidence": 0.1, "start_index": 99}]}}
    parts = ocr_pages.page_parts(page, ocr_pages.PageOptions(confidence="word"))
    html = render.document(parts)["text/html"]
    assert "<mark>" not in html and "sneaky" in html  # a bad position is not trusted either


def test_markdown_tables_go_back_in_place(ip, docs):
    run(ip, "%mistral ocr invoice.pdf --tables markdown -o invoice")
    result = ip.user_ns["invoice"]
    assert session().last.request["table_format"] == "markdown"
    assert "| Item | Qty | Price |" in result.text and "tbl-0.md" not in result.text
    assert "<table>" in final_html(ip) and "<td>Widget</td>" in final_html(ip)
    [table] = result.tables()
    assert table["Price"].tolist() == [9.5, 20.0]


def test_no_header_and_no_footer_leave_them_out(ip, docs):
    run(ip, "%mistral ocr report.pdf --pages 0 -o kept")
    assert "ACME Corp" in ip.user_ns["kept"].text and "Page 1 of 3" in ip.user_ns["kept"].text
    run(ip, "%mistral ocr report.pdf --pages 0 --no-header --no-footer -o cut")
    cut = ip.user_ns["cut"]
    assert "ACME Corp" not in cut.text and "Page 1 of 3" not in cut.text
    assert cut.text.startswith("# Section 1: Revenue")
    request = session().last.request
    assert request["extract_header"] is True and request["extract_footer"] is True
    assert cut.raw[0]["header"] == "ACME Corp - Quarterly report"


@pytest.mark.parametrize("line, said", [
    ("invoice.pdf -m mistral-ocr-2512 --blocks", "returns no blocks: blocks need OCR 4"),
    ("invoice.pdf -m mistral-ocr-2505 --no-header", "does not take --no-header"),
    ("invoice.pdf --tables csv", "--tables takes html or markdown"),
    ("invoice.pdf --blocks --tables", "not --tables and --blocks"),
    ("invoice.pdf --blocks --schema 'number'", "not --schema and --blocks"),
])
def test_what_a_model_or_a_line_cannot_do_is_refused_before_sending(ip, docs, line, said):
    result = run(ip, f"%mistral ocr {line}", ok=False)
    assert said in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
    assert ocr_records() == []


def test_a_column_of_documents_gets_blocks_and_scores(ip, docs):
    ip.user_ns["df"] = pd.DataFrame({"path": ["notice.pdf", "invoice.pdf"]})
    code = ("out = df.mistral.ocr('path', blocks=True, confidence='word', tables='html', "
            "progress=False)")
    run(ip, code)
    out = ip.user_ns["out"]
    assert list(out.columns) == ["text", "pages", "blocks", "confidence", "min_confidence",
                                 "low_words", "_error"]
    assert out["_error"].isna().all() and out["pages"].tolist() == [1, 1]
    notice, invoice = out["blocks"]
    assert isinstance(notice, pd.DataFrame) and notice["type"].tolist() == ["title", "text", "table", "text"]
    assert list(invoice.columns) == ["page", "type", "x0", "y0", "x1", "y1", "content"]
    assert out["min_confidence"].tolist() == [0.62, 1.0]
    assert out["low_words"].iloc[0][:2] == ["Fine", "print:"] and out["low_words"].iloc[1] == []
    assert "<table>" in out["text"].iloc[0] and "tbl-0.html" not in out["text"].iloc[0]
    assert [r.pages for r in ocr_records()] == [1, 1]
    stacked = pd.concat(out["blocks"].dropna().to_dict())  # as the README says
    assert len(stacked) == len(notice) + len(invoice) and stacked.index.nlevels == 2
    # Run again: every row comes back from the finished rows, the same frames, nothing sent.
    run(ip, code.replace("out =", "again ="))
    again = ip.user_ns["again"]
    assert len(ocr_records()) == 2
    pd.testing.assert_frame_equal(again["blocks"].iloc[0], notice)
    assert again["low_words"].tolist() == out["low_words"].tolist()


def test_a_column_takes_a_schema_or_blocks_not_both(ip, docs):
    ip.user_ns["df"] = pd.DataFrame({"path": ["invoice.pdf"]})
    result = run(ip, "df.mistral.ocr('path', schema='number', blocks=True)", ok=False)
    assert "not both" in str(result.error_in_exec)
    result = run(ip, "df.mistral.ocr('path', confidence='words')", ok=False)
    assert "give word, block or page" in str(result.error_in_exec)
    assert ocr_records() == []


@pytest.mark.parametrize("options", [
    {"confidence_scores_granularity": "block"}, {"confidence_scores_granularity": "word"},
    {"confidence_scores_granularity": "page", "table_format": "html", "extract_header": True,
     "extract_footer": True},
])
def test_the_offline_pages_conform_with_scores_of_small_print(offline_server, check, options):
    import httpx

    body = {"model": "mistral-ocr-latest", **options,
            "document": {"type": "document_url", "document_url": data_url(report_pdf(3), "application/pdf")}}
    response = httpx.post(f"{offline_server.url}/v1/ocr", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {offline_server.api_key}"})
    check(response.json(), "/v1/ocr", "post")
    first, _, scan = response.json()["pages"]
    if options["confidence_scores_granularity"] == "block":
        scores = {b["type"]: b["confidence_scores"] for b in scan["blocks"]}
        assert scores["image"]["average_content_confidence_score"] is None  # no text to score
    if not options.get("extract_header"):
        assert first["confidence_scores"]["minimum_page_confidence_score"] == 0.62
    else:  # the small print went to the header and footer fields
        assert first["confidence_scores"]["minimum_page_confidence_score"] == 1.0
    # A scanned page: nothing read but its header's small print, its placeholder scored 0.
    assert scan["confidence_scores"]["minimum_page_confidence_score"] == 0.0
    assert scan["confidence_scores"]["average_page_confidence_score"] < 0.2
    json.dumps(response.json())
