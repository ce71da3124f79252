"""Inputs that explode: zip bombs, huge page ranges, damaged PDFs, in a cell and on the server.

What may blow up memory runs in a child Python held to 4 GB (`bounded`): the kernel-like
shell there, and the offline server there.
"""

from __future__ import annotations

import base64

import httpx
from bounded import KEY, bounded_server, run_bounded
from conftest import run
from offline_documents import bomb_docx, bomb_pptx, invoice_pdf

import mistral_magic
from mistral_magic.errors import MistralMagicError

GB = 1 << 30


def one_line_of_ours(error: dict | None) -> str:
    assert error is not None, "the cell did not fail"
    assert error["ours"] and "\n" not in error["message"], error
    return error["message"]


def test_a_zip_bomb_is_refused_in_one_line_before_it_inflates(tmp_path):
    said = run_bounded("""
        import json, pathlib
        import pandas as pd
        from offline_documents import bomb_docx, bomb_pptx

        pathlib.Path("bomb.docx").write_bytes(bomb_docx(2 << 30))  # 2 MB, inflating to 2 GB
        pathlib.Path("bomb.pptx").write_bytes(bomb_pptx(2 << 30))
        pathlib.Path("liar.docx").write_bytes(bomb_docx(2 << 30, declared=1000))
        out = {"ocr": cell("%mistral ocr bomb.docx"),
               "file": cell("%%mistral --file bomb.docx\\nSummarise it"),
               "deck": cell("%mistral ocr bomb.pptx"),
               "liar": cell("%mistral ocr liar.docx")}
        rows = pd.DataFrame({"path": ["bomb.docx"]}).mistral.ocr("path", progress=False)
        out["row"] = rows["_error"][0]
        print(json.dumps(out))
    """, tmp_path, shell=True)
    for name in ("ocr", "file", "deck"):
        assert "inflates to" in one_line_of_ours(said[name]), said[name]
    assert "could not be read as a Word document" in one_line_of_ours(said["liar"])
    assert "inflates to" in said["row"]


def test_page_ranges_are_checked_against_the_document_before_they_are_listed(tmp_path):
    (tmp_path / "one.pdf").write_bytes(invoice_pdf())
    said = run_bounded("""
        import json
        import pandas as pd

        out = {"file": cell("%mistral ocr one.pdf --pages 0-999999999"),
               "url": cell("%mistral ocr https://example.com/a.pdf --pages 3,0-999999999")}
        rows = pd.DataFrame({"path": ["one.pdf"]})
        out["row"] = rows.mistral.ocr("path", pages="0-999999999", progress=False)["_error"][0]
        print(json.dumps(out))
    """, tmp_path, shell=True)
    assert "one.pdf has 1 page (0-0); page 999999999" in one_line_of_ours(said["file"])
    assert "at most 1,000 pages" in one_line_of_ours(said["url"])
    assert "has 1 page" in said["row"]


def _ocr(http: httpx.Client, data: bytes, mime: str, **extra) -> httpx.Response:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return http.post("/v1/ocr", json={"model": "mistral-ocr-latest", **extra,
                                      "document": {"type": "document_url", "document_url": url}})


def test_the_offline_server_refuses_what_would_explode_in_the_apis_error_shape():
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    with bounded_server() as url, httpx.Client(base_url=url, timeout=120,
                                               headers={"Authorization": f"Bearer {KEY}"}) as http:
        for data, status, said in [
            (bomb_docx(2 * GB), 413, "inflates to"),
            (bomb_pptx(2 * GB), 413, "inflates to"),
            (bomb_docx(2 * GB, declared=1000), 400, "Word XML is damaged"),
            (b"\n" * (6 << 20), 400, "more than 1000 pages"),
        ]:
            answer = _ocr(http, data, docx if data.startswith(b"PK") else "text/plain")
            body = answer.json()
            assert answer.status_code == status and body["object"] == "error", body
            assert said in body["message"] and body["type"] == "invalid_request_error", body
        answer = _ocr(http, invoice_pdf(), "application/pdf", pages="0-999999999")
        assert answer.status_code == 400 and "page 999999999 is outside" in answer.json()["message"]
        big = http.post("/v1/files", data={"purpose": "ocr"},
                        files={"file": ("big.txt", b"x" * (51 << 20), "text/plain")}).json()
        answer = http.post("/v1/ocr", json={"model": "mistral-ocr-latest",
                                            "document": {"type": "file", "file_id": big["id"]}})
        assert answer.status_code == 413 and "at most 52,428,800 bytes" in answer.json()["message"]
        assert http.get("/v1/models").status_code == 200  # and it carries on


def test_mutated_pdfs_fail_in_one_line_on_both_sides(tmp_path):
    said = run_bounded("""
        import collections, json, random, re
        from offline_documents import invoice_pdf, report_pdf
        from mistral_magic.inputs import documents
        from mistral_magic.errors import MistralMagicError
        from mistral_magic.offline import documents as served
        from mistral_magic.offline.wire import RequestError

        FILTERS = [b"/LZWDecode", b"/RunLengthDecode", b"/CCITTFaxDecode", b"/JBIG2Decode",
                   b"/DCTDecode", b"/JPXDecode", b"/Crypt", b"/FooDecode", b"/ASCII85Decode"]

        def mutate(data, rng):
            how, out = rng.randrange(5), bytearray(data)
            if how == 0:
                for _ in range(rng.randint(1, 12)):
                    out[rng.randrange(len(out))] = rng.randrange(256)
            elif how == 1:
                return data.replace(b"/FlateDecode", rng.choice(FILTERS), rng.randint(1, 3))
            elif how == 2:
                return data[: rng.randrange(8, len(data))]
            elif how == 3:
                at = rng.randrange(len(out))
                del out[at: at + rng.randint(1, 400)]
            else:
                numbers = [m.start() for m in re.finditer(rb"\\d+", data)]
                for _ in range(rng.randint(1, 4)):
                    at = rng.choice(numbers)
                    out[at: at + 1] = str(rng.choice([0, 9, 99999, 2**31, 10**12])).encode()
            return bytes(out)

        seeds = [invoice_pdf(), report_pdf(3), invoice_pdf(image=False, link=None)]
        rng = random.Random(18)
        read = refused = 0
        raw, served_raw = collections.Counter(), collections.Counter()
        for n in range(400):
            data = mutate(seeds[n % len(seeds)], rng)
            try:
                documents.document(data, "mutated.pdf", pictures=True)
                read += 1
            except MistralMagicError as exc:
                refused += 1
                if "\\n" in str(exc):
                    raw["more than one line"] += 1
            except Exception as exc:
                raw[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            try:
                served.load(data, "mutated.pdf").pages()
            except RequestError:
                pass
            except Exception as exc:
                served_raw[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        print(json.dumps({"read": read, "refused": refused, "raw": raw, "served": served_raw}))
    """, tmp_path)
    assert said["raw"] == {} and said["served"] == {}, said
    assert said["read"] > 50 and said["refused"] > 50, said  # the mutations did both


def test_a_pdf_with_an_unsupported_filter_is_one_line_in_cells(ip, tmp_path, capfd):
    (tmp_path / "odd.pdf").write_bytes(invoice_pdf().replace(b"/FlateDecode", b"/FooDecode"))
    for code in ("%mistral ocr odd.pdf", "%%mistral --file odd.pdf\nWho is the customer?"):
        error = run(ip, code, ok=False).error_in_exec
        assert isinstance(error, MistralMagicError) and "\n" not in str(error), repr(error)
        assert "odd.pdf could not be read as a PDF" in str(error)
    assert "startxref" not in capfd.readouterr().err  # pypdf's repair notes stay out of the cell
    assert [r for r in mistral_magic.session().ledger.records] == []
