"""Pictures and documents offline: chat that names and quotes them, signed URLs, and OCR of real text layers."""

from __future__ import annotations

import base64
import io
import json
import math

import httpx
import pytest
from mistralai.client import errors
from offline_documents import data_url, docx, invoice_pdf, picture, report_pdf
from offline_spec import check_error_fixture, check_fixture, spec_fixture  # noqa: F401

from mistral_magic.money import tokens

MODEL = "mistral-small-latest"
PDF_MIME = "application/pdf"


def formula(width, height):
    """MISTRAL_FACTS.md: 16-pixel patches, longest side capped at 1024, (ceil(w/16)+1)·ceil(h/16)."""
    scale = min(1.0, 1024 / max(width, height))
    width, height = round(width * scale), round(height * scale)
    return (math.ceil(width / 16) + 1) * math.ceil(height / 16)


def post(server, path, body):
    return httpx.post(server.url + path, json=body, timeout=60, headers={"Authorization": f"Bearer {server.api_key}"})


@pytest.fixture(scope="module")
def uploaded(offline_server):
    """An invoice uploaded for OCR, and its signed URL, through the SDK."""
    from mistralai.client import Mistral

    with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
        meta = client.files.upload(file={"file_name": "invoice.pdf", "content": invoice_pdf()}, purpose="ocr")
        return meta, client.files.get_signed_url(file_id=meta.id).url


# --- pictures in chat ------------------------------------------------------------------------------

def test_the_answer_names_the_pictures_it_received_and_says_it_cannot_see_them(sdk):
    png, jpeg = data_url(picture(640, 480), "image/png"), data_url(picture(2048, 1024, "JPEG"), "image/jpeg")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What do these charts show?"},
        {"type": "image_url", "image_url": png},
        {"type": "image_url", "image_url": {"url": jpeg, "detail": "high"}},
        {"type": "image_url", "image_url": "https://example.com/chart.png"}]}]
    response = sdk.chat.complete(model=MODEL, messages=messages)
    text = response.choices[0].message.content
    assert "3 images received" in text and "cannot see pictures" in text
    assert f"a 640×480 PNG ({formula(640, 480):,} tokens)" in text
    assert f"a 2048×1024 JPEG ({formula(2048, 1024):,} tokens)" in text
    assert "https://example.com/chart.png (a URL: the offline server has no network and did not fetch it)" in text
    # Counted as the hosted API counts images, by the function the client's estimates use.
    assert response.usage.prompt_tokens == tokens.count_messages(messages)
    assert tokens.image_tokens(png) == formula(640, 480) == 1230
    assert tokens.image_tokens(jpeg) == formula(2048, 1024) == 2080


def test_a_follow_up_mentions_the_pictures_still_in_context(sdk):
    png = data_url(picture(64, 64), "image/png")
    messages = [{"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": png}]},
                {"role": "assistant", "content": "Looked."}, {"role": "user", "content": "And the colours?"}]
    text = sdk.chat.complete(model=MODEL, messages=messages).choices[0].message.content
    assert "1 earlier image in this conversation" in text


def test_a_model_without_vision_refuses_pictures(offline_server):
    body = {"model": "codestral-latest", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"}, {"type": "image_url", "image_url": data_url(picture(8, 8), "image/png")}]}]}
    response = post(offline_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    assert "codestral-latest" not in response.json()["message"] or "vision" in response.json()["message"]
    assert "cannot take images" in response.json()["message"] and "mistral-large-2512" in response.json()["message"]


def test_a_data_url_that_is_not_a_picture_is_refused(offline_server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": data_url(b"not an image", "image/png")}]}]}
    response = post(offline_server, "/v1/chat/completions", body)
    assert response.status_code == 400 and "does not hold an image" in response.json()["message"]


# --- documents in chat -------------------------------------------------------------------------------

def test_a_pdf_in_chat_is_read_and_quoted(sdk):
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Who is the customer on this invoice?"},
        {"type": "document_url", "document_url": data_url(invoice_pdf(), PDF_MIME), "document_name": "inv.pdf"}]}]
    response = sdk.chat.complete(model=MODEL, messages=messages)
    text = response.choices[0].message.content
    assert "Document read: inv.pdf (PDF, 1 page" in text
    assert "From inv.pdf: “Customer: Ada Lovelace”" in text
    # The document's text is in the prompt, as the hosted API bills it.
    as_text = [{"role": "user", "content": [
        {"type": "text", "text": "Who is the customer on this invoice?"},
        {"type": "text", "text": "# Invoice INV-2041"}]}]
    assert response.usage.prompt_tokens > tokens.count_messages(as_text)


def test_a_schema_answer_takes_its_values_from_the_document(sdk, uploaded):
    meta, _ = uploaded
    schema = {"type": "object", "additionalProperties": False, "required": ["customer", "date", "total"],
              "properties": {"customer": {"type": "string"}, "date": {"type": "string", "format": "date"},
                             "total": {"type": "number"}}}
    response = sdk.chat.complete(model=MODEL, response_format={"type": "json_schema", "json_schema": {
        "name": "invoice", "schema": schema, "strict": True}}, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Extract the invoice fields"}, {"type": "file", "file_id": meta.id}]}])
    assert json.loads(response.choices[0].message.content) == {"customer": "Ada Lovelace", "date": "2026-03-14",
                                                              "total": 39.0}


def test_a_signed_url_and_a_file_id_read_the_same_document(sdk, uploaded):
    meta, url = uploaded
    answers = []
    for chunk in ({"type": "document_url", "document_url": url}, {"type": "file", "file_id": meta.id}):
        messages = [{"role": "user", "content": [{"type": "text", "text": "Summarise"}, chunk]}]
        answers.append(sdk.chat.complete(model=MODEL, messages=messages, random_seed=1).choices[0].message.content)
    read = [next(line for line in answer.splitlines() if "Document read" in line) for answer in answers]
    assert read[0] == read[1] and "invoice.pdf (PDF, 1 page" in read[0]


def test_an_http_document_url_is_not_fetched(offline_server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "read"}, {"type": "document_url", "document_url": "https://arxiv.org/pdf/2201.04234"}]}]}
    response = post(offline_server, "/v1/chat/completions", body)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "cannot fetch https://arxiv.org/pdf/2201.04234" in message and "signed URLs" in message


def test_a_model_without_document_reading_refuses_documents(offline_server):
    body = {"model": "zai-glm-5-2", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "read"}, {"type": "document_url", "document_url": data_url(b"hello", "text/plain")}]}]}
    response = post(offline_server, "/v1/chat/completions", body)
    assert response.status_code == 400 and "cannot read documents" in response.json()["message"]


# --- files: OCR uploads and signed URLs -------------------------------------------------------------------

def test_an_ocr_upload_has_its_type_and_no_lines(uploaded):
    meta, _ = uploaded
    assert meta.purpose == "ocr" and meta.mimetype == PDF_MIME and meta.num_lines == 0


def test_a_signed_url_downloads_without_the_key_until_it_is_tampered_with(offline_server, uploaded):
    _, url = uploaded
    downloaded = httpx.get(url, timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == invoice_pdf()
    assert downloaded.headers["content-type"] == PDF_MIME
    tampered = httpx.get(url[:-4] + "0000", timeout=30)
    assert tampered.status_code == 403 and "not valid" in tampered.json()["message"]


def test_a_signed_url_expiry_is_bounded_and_the_file_must_exist(offline_server, sdk, uploaded):
    meta, _ = uploaded
    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    for hours, status in ((0, 422), (169, 422), (168, 200), (1, 200)):
        response = httpx.get(f"{offline_server.url}/v1/files/{meta.id}/url", params={"expiry": hours},
                             headers=headers, timeout=30)
        assert response.status_code == status, hours
    with pytest.raises(errors.SDKError) as caught:
        sdk.files.get_signed_url(file_id="00000000-0000-4000-8000-000000000000")
    assert caught.value.status_code == 404


# --- OCR ------------------------------------------------------------------------------------------------

def ocr(sdk, document, **options):
    return sdk.ocr.process(model=options.pop("model", "mistral-ocr-latest"), document=document, **options)


def test_ocr_reads_the_text_layer_with_headings_tables_images_and_links(sdk, uploaded):
    meta, _ = uploaded
    result = ocr(sdk, {"type": "file", "file_id": meta.id})
    (page,) = result.pages
    assert result.model == "mistral-ocr-4-1" and result.usage_info.pages_processed == 1
    assert result.usage_info.doc_size_bytes == len(invoice_pdf())
    assert page.markdown.startswith("# Invoice INV-2041\n\nCustomer: Ada Lovelace\nDate: 2026-03-14")
    assert "| Item | Qty | Price |\n|---|---|---|\n| Widget | 2 | 9.50 |" in page.markdown
    assert "![img-0.jpeg](img-0.jpeg)" in page.markdown
    assert page.hyperlinks == ["https://example.com/terms"]
    # A4 at 200 dpi, from the PDF's own page size.
    assert (page.dimensions.dpi, page.dimensions.width, page.dimensions.height) == (200, 1654, 2339)
    (image,) = page.images
    assert image.id == "img-0.jpeg" and image.image_base64 is None
    # The logo is 60 mm wide at x=20 mm: 472 px at 200 dpi, from 157 px.
    assert (image.top_left_x, image.bottom_right_x) == (157, 630)
    assert [block.type for block in page.blocks] == ["title", "text", "image", "table", "text"]


def test_ocr_pages_dimensions_headers_footers_and_placeholders(sdk):
    document = {"type": "document_url", "document_url": data_url(report_pdf(), PDF_MIME)}
    result = ocr(sdk, document, extract_header=True, extract_footer=True)
    assert [p.index for p in result.pages] == [0, 1, 2]
    first, _, scan = result.pages
    assert (first.dimensions.width, first.dimensions.height) == (1700, 2200)  # Letter at 200 dpi
    assert first.header == "ACME Corp - Quarterly report" and first.footer == "Page 1 of 3"
    assert "ACME Corp" not in first.markdown and first.markdown.startswith("# Section 1: Revenue")
    assert "- Europe led the growth\n- Asia held steady" in first.markdown
    # A scanned page: its picture, and a placeholder that says why there is no text.
    assert scan.markdown.startswith("![img-0.jpeg](img-0.jpeg)\n\n*Offline OCR (mistral_magic): page 2 has no text")
    assert "cannot recognise text" in scan.markdown
    kept = ocr(sdk, document, pages=[0])
    assert kept.pages[0].header is None and kept.pages[0].markdown.startswith("ACME Corp - Quarterly report")


@pytest.mark.parametrize("pages, expected", [([2, 0], [2, 0]), ("0,2", [0, 2]), ("1-2", [1, 2]), ("0-1,1", [0, 1])])
def test_ocr_pages_selects_by_list_or_ranges(sdk, pages, expected):
    result = ocr(sdk, {"type": "document_url", "document_url": data_url(report_pdf(), PDF_MIME)}, pages=pages)
    assert [p.index for p in result.pages] == expected and result.usage_info.pages_processed == len(expected)


def test_ocr_pages_outside_the_document_are_refused(offline_server):
    body = {"model": "mistral-ocr-latest", "pages": [0, 7],
            "document": {"type": "document_url", "document_url": data_url(report_pdf(), PDF_MIME)}}
    response = post(offline_server, "/v1/ocr", body)
    assert response.status_code == 400 and "page 7 is outside the document, which has 3 pages" in response.text


@pytest.mark.parametrize("fmt, link, content", [
    ("markdown", "[tbl-0.md](tbl-0.md)", "| Item | Qty | Price |\n|---|---|---|"),
    ("html", "[tbl-0.html](tbl-0.html)", "<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>"),
])
def test_ocr_table_format_moves_tables_out_of_the_markdown(sdk, uploaded, fmt, link, content):
    meta, _ = uploaded
    page = ocr(sdk, {"type": "file", "file_id": meta.id}, table_format=fmt).pages[0]
    assert link in page.markdown and "| Widget |" not in page.markdown
    (table,) = page.tables
    assert table.id == link[1:].split("]")[0] and table.format_ == fmt and table.content.startswith(content)


def test_ocr_returns_images_as_jpeg_data_urls_and_honours_limits(sdk, uploaded):
    from PIL import Image

    meta, url = uploaded
    page = ocr(sdk, {"type": "document_url", "document_url": url}, include_image_base64=True).pages[0]
    encoded = page.images[0].image_base64
    assert encoded.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(encoded.split(",", 1)[1]))) as img:
        assert img.format == "JPEG" and img.size == (200, 100)
    assert ocr(sdk, {"type": "file", "file_id": meta.id}, image_limit=0).pages[0].images == []
    assert ocr(sdk, {"type": "file", "file_id": meta.id}, image_min_size=500).pages[0].images == []


def test_ocr_annotations_are_filled_from_the_text_by_the_schema(sdk, uploaded):
    meta, _ = uploaded
    fields = {"type": "object", "properties": {"customer": {"type": "string"}, "date": {"type": "string",
                                                                                         "format": "date"}}}
    figure = {"type": "object", "properties": {"description": {"type": "string"}}}
    result = ocr(sdk, {"type": "file", "file_id": meta.id},
                 document_annotation_format={"type": "json_schema", "json_schema": {"name": "doc", "schema": fields}},
                 bbox_annotation_format={"type": "json_schema", "json_schema": {"name": "fig", "schema": figure}})
    assert json.loads(result.document_annotation) == {"customer": "Ada Lovelace", "date": "2026-03-14"}
    assert set(json.loads(result.pages[0].images[0].image_annotation)) == {"description"}


def test_ocr_confidence_scores_and_blocks_follow_the_model(sdk, uploaded):
    meta, _ = uploaded
    words = ocr(sdk, {"type": "file", "file_id": meta.id}, confidence_scores_granularity="word").pages[0]
    scores = words.confidence_scores
    assert scores.average_page_confidence_score == 1.0 and scores.word_confidence_scores[1].text == " Invoice"
    blocks = ocr(sdk, {"type": "file", "file_id": meta.id}, confidence_scores_granularity="block").pages[0].blocks
    assert blocks[0].confidence_scores.average_content_confidence_score == 1.0
    # Block extraction is OCR 4 and newer: older models return an empty list, as the docs say.
    assert ocr(sdk, {"type": "file", "file_id": meta.id}, model="mistral-ocr-2512").pages[0].blocks == []
    no_blocks = post_json(sdk, meta.id)
    assert "blocks" not in no_blocks["pages"][0]


def post_json(sdk, file_id):
    import httpx as client

    config = sdk.sdk_configuration
    return client.post(config.server_url + "/v1/ocr", timeout=30,
                       headers={"Authorization": f"Bearer {config.security.api_key}"},
                       json={"model": "mistral-ocr-latest", "include_blocks": False,
                             "document": {"type": "file", "file_id": file_id}}).json()


def test_ocr_of_a_picture_says_it_cannot_read_it(sdk):
    result = ocr(sdk, {"type": "image_url", "image_url": data_url(picture(800, 600, "JPEG"), "image/jpeg")})
    (page,) = result.pages
    assert (page.dimensions.width, page.dimensions.height) == (800, 600)
    assert page.markdown.startswith("![img-0.jpeg](img-0.jpeg)")
    assert "this page is an image of 800×600 px" in page.markdown and "cannot recognise text" in page.markdown
    assert [(i.top_left_x, i.bottom_right_x, i.bottom_right_y) for i in page.images] == [(0, 800, 600)]


def test_ocr_reads_word_documents_and_text(sdk):
    word = ocr(sdk, {"type": "document_url", "document_url": data_url(docx(["Quarterly plan", "Ship it."]),
                                                                       "application/vnd.openxmlformats")})
    assert word.pages[0].markdown == "Quarterly plan\n\nShip it."
    text = ocr(sdk, {"type": "document_url", "document_url": data_url(b"a,b\n1,2\n3,4\n", "text/csv")})
    assert text.pages[0].markdown == "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"


UNREADABLE = [
    ({"type": "document_url", "document_url": "https://arxiv.org/pdf/2201.04234"}, 400, "cannot fetch"),
    ({"type": "document_url", "document_url": "ftp://host/x.pdf"}, 400, "http(s) URL or a data: URL"),
    ({"type": "document_url", "document_url": data_url(b"%PDF-1.4 broken", PDF_MIME)}, 400, "not a readable PDF"),
    ({"type": "file", "file_id": "00000000-0000-4000-8000-000000000000"}, 404, "not found"),
    ({"type": "image_url", "image_url": data_url(b"plain words", "image/png")}, 400, "not an image"),
]


# Status and message need no spec (so they are checked on their own); the shape is the next test's.
@pytest.mark.parametrize("document, status, words", UNREADABLE)
def test_ocr_refuses_what_it_cannot_read(offline_server, document, status, words):
    response = post(offline_server, "/v1/ocr", {"model": "mistral-ocr-latest", "document": document})
    assert response.status_code == status and words in response.json()["message"]


def test_ocr_refusals_have_the_apis_error_shape(offline_server, check_error):
    for document, _, _ in UNREADABLE:
        response = post(offline_server, "/v1/ocr", {"model": "mistral-ocr-latest", "document": document})
        check_error(response, "/v1/ocr", "post")


def test_ocr_annotation_formats_must_be_json_schema(offline_server):
    body = {"model": "mistral-ocr-latest", "document_annotation_format": {"type": "json_object"},
            "document": {"type": "document_url", "document_url": data_url(b"hi", "text/plain")}}
    response = post(offline_server, "/v1/ocr", body)
    assert response.status_code == 400 and "only a json_schema" in response.json()["message"]
    body = {"model": "mistral-ocr-latest", "document_annotation_prompt": "Extract",
            "document": {"type": "document_url", "document_url": data_url(b"hi", "text/plain")}}
    assert post(offline_server, "/v1/ocr", body).status_code == 400


def test_ocr_default_model_and_the_model_it_used(offline_server):
    body = {"model": None, "document": {"type": "document_url", "document_url": data_url(b"hello", "text/plain")}}
    response = post(offline_server, "/v1/ocr", body)
    assert response.status_code == 200 and response.json()["model"] == "mistral-ocr-4-1"


def bomb_png(side: int = 60000) -> bytes:
    """A few bytes of PNG that claim to be side×side pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_picture_claiming_billions_of_pixels_is_refused_not_decoded(offline_server):
    url = data_url(bomb_png(), "image/png")
    chat = post(offline_server, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"}, {"type": "image_url", "image_url": url}]}]})
    assert chat.status_code == 400
    ocr_response = post(offline_server, "/v1/ocr", {"model": "mistral-ocr-latest",
                                                    "document": {"type": "image_url", "image_url": url}})
    assert ocr_response.status_code == 400 and "not an image" in ocr_response.json()["message"]
