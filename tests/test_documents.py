"""Documents in a cell (--file): uploaded once per content, sent by signed URL, counted, remembered."""

from __future__ import annotations

import json

import pytest
from conftest import run
from offline_documents import invoice_pdf, picture

import mistral_magic


def session():
    return mistral_magic.session()


def files_on_server() -> int:
    return len(session().backend.client.files.list(page_size=1000).data)


def document_chunks(request: dict) -> list[dict]:
    return [c for m in request["messages"] if isinstance(m.get("content"), list)
            for c in m["content"] if c.get("type") == "document_url"]


def reload(ip):
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")


@pytest.fixture
def invoice(tmp_path):
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    (tmp_path / "other.pdf").write_bytes(invoice_pdf(number="INV-7", customer="Grace Hopper"))
    return tmp_path / "invoice.pdf"


def test_a_file_is_read_by_the_model_and_uploaded_once(ip, invoice):
    before = files_on_server()
    run(ip, "%%mistral --file invoice.pdf\nWho is the customer?", cell_id="a")
    answer = session().last
    assert "Document read: invoice.pdf" in answer.text and "Ada Lovelace" in answer.text
    assert session().uploads.uploaded == 1 and files_on_server() == before + 1
    [chunk] = document_chunks(answer.request)
    assert chunk["document_url"].startswith("mistral-magic:upload/sha256-")  # never a signed URL
    run(ip, "%%mistral --file invoice.pdf\nWho is the customer?", cell_id="a")  # re-run
    run(ip, "%%mistral --file invoice.pdf\nAnd the total?", cell_id="b")
    assert session().uploads.uploaded == 1 and files_on_server() == before + 1


def test_a_fresh_kernel_on_the_same_store_does_not_upload_again(ip, invoice):
    run(ip, "%%mistral --file invoice.pdf\nWho?")
    count = files_on_server()
    reload(ip)
    run(ip, "%%mistral --file invoice.pdf\nWhen was it issued?")  # a new question: sent
    assert not session().last.cached and "Ada Lovelace" in session().last.text
    assert session().uploads.uploaded == 0 and files_on_server() == count


def test_a_file_the_server_lost_is_uploaded_again_once(ip, invoice):
    run(ip, "%%mistral --file invoice.pdf\nWho?")
    client = session().backend.client
    for f in client.files.list(page_size=1000).data:
        client.files.delete(file_id=f.id)
    reload(ip)
    run(ip, "%%mistral --file invoice.pdf\nWhen was it issued?")
    assert session().uploads.uploaded == 1 and files_on_server() == 1
    assert "Ada Lovelace" in session().last.text


def test_with_the_cache_off_nothing_is_remembered_across_kernels(ip, invoice):
    run(ip, "%config MistralMagics.cache = 'off'")
    run(ip, "%%mistral --file invoice.pdf\nWho?")
    reload(ip)
    run(ip, "%config MistralMagics.cache = 'off'")
    run(ip, "%%mistral --file invoice.pdf\nWho?")
    assert not session().last.cached and session().uploads.uploaded == 1


def test_files_repeat_and_follow_ups_keep_them(ip, invoice):
    run(ip, "%%mistral --file invoice.pdf --file other.pdf\nCompare the customers.")
    text = session().last.text
    assert "invoice.pdf" in text and "other.pdf" in text and "Grace Hopper" in text
    run(ip, "%%mistral\nWhich one is larger?")
    assert len(document_chunks(session().last.request)) == 2


def test_the_estimate_bounds_what_a_document_uses(ip, invoice):
    run(ip, "%%mistral --file invoice.pdf\nWho?")
    answer = session().last
    estimate = session().estimate(answer.request)
    assert answer.prompt_tokens <= estimate.prompt_tokens <= answer.prompt_tokens + 200


def test_a_dry_run_uploads_nothing_and_shows_the_reference(ip, invoice):
    before = files_on_server()
    run(ip, "%%mistral --file invoice.pdf --dry-run\nWho?")
    shown = json.dumps([f["data"] for f in ip.display_pub.finals()])
    assert "mistral-magic:upload/sha256-" in shown and "invoice.pdf" in shown
    assert files_on_server() == before and session().ledger.records == []


def test_bad_files_are_one_line_errors(ip, tmp_path):
    (tmp_path / "shot.png").write_bytes(picture(20, 20))
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    for arg, said in [("shot.png", "pass it with --image"), ("nope.pdf", "no file"),
                      ("blob.bin", "not a format the API reads")]:
        result = run(ip, f"%%mistral --file {arg}\nHi", ok=False)
        message = str(result.error_in_exec)
        assert said in message and "\n" not in message, message
    assert session().ledger.records == []


def test_a_budget_holds_the_documents_bound(ip, invoice):
    run(ip, "%config MistralMagics.budget_usd = 0.000001")
    result = run(ip, "%%mistral --file invoice.pdf\nWho?", ok=False)
    assert "Refused" in str(result.error_in_exec)
    assert session().uploads.uploaded == 0
