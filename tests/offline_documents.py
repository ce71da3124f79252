"""Documents and pictures made for the offline-server tests: PDFs (fpdf2), images (Pillow), DOCX, data URLs."""

from __future__ import annotations

import base64
import datetime as dt
import io
import zipfile

# fpdf2 writes the creation time into every PDF: a fixed one keeps the bytes the same run to run.
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def picture(width: int, height: int, fmt: str = "PNG", color=(200, 40, 40)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, fmt)
    return out.getvalue()


def invoice_pdf(number: str = "INV-2041", customer: str = "Ada Lovelace", date: str = "2026-03-14",
                items=(("Widget", "2", "9.50"), ("Gadget", "1", "20.00")), total: str = "39.00",
                image: bool = True, link: str | None = "https://example.com/terms") -> bytes:
    """A one-page A4 invoice: a title, fields, a logo image, a table of items, a total and a link."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("helvetica", size=20)
    pdf.cell(0, 12, f"Invoice {number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, f"Customer: {customer}\nDate: {date}\nTotal: {total} EUR")
    if image:
        pdf.image(io.BytesIO(picture(200, 100)), x=20, y=70, w=60)
    pdf.set_y(110)
    with pdf.table() as table:
        for row in (("Item", "Qty", "Price"), *items):
            cells = table.row()
            for cell in row:
                cells.cell(cell)
    if link:
        pdf.set_y(180)
        pdf.cell(0, 8, "Terms and conditions", link=link)
    return bytes(pdf.output())


def report_pdf(pages: int = 3) -> bytes:
    """A Letter report with a header and a footer on every page, and one scanned page (an image, no text)."""
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(False)
    for number in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=8)
        pdf.set_y(4)
        pdf.cell(0, 5, "ACME Corp - Quarterly report")
        if number == pages - 1:
            pdf.image(io.BytesIO(picture(400, 520, "JPEG", (230, 230, 230))), x=20, y=20, w=170)
            continue
        pdf.set_y(30)
        pdf.set_font("helvetica", size=16)
        pdf.cell(0, 10, f"Section {number + 1}: Revenue", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 6, f"Revenue grew by {10 + number} percent in the quarter.\n"
                             "- Europe led the growth\n- Asia held steady")
        pdf.set_y(-10)
        pdf.set_font("helvetica", size=8)
        pdf.cell(0, 5, f"Page {number + 1} of {pages}", align="C")
    return bytes(pdf.output())


def docx(paragraphs: list[str]) -> bytes:
    """A minimal Word document (the parts Word itself needs to open it)."""
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
        'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main'
        '+xml"/></Types>',
        "word/document.xml": f'<?xml version="1.0"?><w:document {ns}><w:body>{body}</w:body></w:document>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()


def office(parts: dict[str, str | bytes]) -> bytes:
    """A zip of these parts, as Office files are."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return out.getvalue()


def app_xml(**declared: int) -> str:
    """docProps/app.xml with the counts Word and PowerPoint write about a file (often stale)."""
    fields = "".join(f"<{name}>{value}</{name}>" for name, value in declared.items())
    return ('<?xml version="1.0"?><Properties xmlns="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/extended-properties">{fields}</Properties>')


def stale_docx(declared: int, pages: int) -> bytes:
    """A Word document whose docProps/app.xml says `declared` pages while its content has
    `pages` (page breaks between them), as Word often leaves it."""
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    brk = '<w:p><w:r><w:br w:type="page"/></w:r></w:p>'
    body = brk.join(f"<w:p><w:r><w:t>Section {n}</w:t></w:r></w:p>" for n in range(pages))
    return office({"word/document.xml": f'<?xml version="1.0"?><w:document {ns}><w:body>{body}'
                                         "</w:body></w:document>",
                   "docProps/app.xml": app_xml(Pages=declared)})


def pptx(slides: list[str], declared: int | None = None) -> bytes:
    """A deck of one text box per slide (`declared`: the slide count its app.xml claims)."""
    ns = ('xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
          'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"')
    parts: dict[str, str | bytes] = {
        f"ppt/slides/slide{n + 1}.xml":
            f'<?xml version="1.0"?><p:sld {ns}><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r>'
            f"<a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
        for n, text in enumerate(slides)}
    parts["docProps/app.xml"] = app_xml(Slides=declared if declared is not None else len(slides))
    return office(parts)


def zip_bomb(name: str, size: int, head: bytes = b"", tail: bytes = b"",
             parts: dict[str, bytes] | None = None, declared: int | None = None) -> bytes:
    """A zip whose part `name` inflates to about `size` bytes (`head`, then "a"s, then `tail`),
    built in a second without inflating it: one deflated megabyte, flushed so that it stands
    alone, repeated. `parts` are small parts stored beside it; `declared` is the size the
    archive states for the part (a lie, when given)."""
    import struct
    import zlib

    chunk = b"a" * (1 << 20)
    count = max(1, size // len(chunk))
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = first.compress(head) + first.flush(zlib.Z_FULL_FLUSH)
    block = first.compress(chunk) + first.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = last.compress(tail) + last.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    full = len(head) + count * len(chunk) + len(tail)
    entries = [(name.encode(), 8, crc, start + block * count + end,
                full if declared is None else declared)]
    for extra, data in (parts or {}).items():
        entries.append((extra.encode(), 0, zlib.crc32(data), data, len(data)))
    out, central = bytearray(), bytearray()
    for raw, method, crc, data, full in entries:
        offset = len(out)
        fields = (20, 0, method, 0, 0x21, crc, len(data), full, len(raw))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + raw + data
        central += struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIHH", *fields, 0)
        central += struct.pack("<HHHII", 0, 0, 0, 0, offset) + raw
    return bytes(out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries),
                                             len(entries), len(central), len(out), 0))


def bomb_docx(size: int, declared: int | None = None) -> bytes:
    """A Word document whose word/document.xml inflates to `size` bytes (stating `declared`)."""
    ns = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    return zip_bomb("word/document.xml", size,
                    b'<?xml version="1.0"?><w:document ' + ns + b"><w:body><w:p><w:r><w:t>",
                    b"</w:t></w:r></w:p></w:body></w:document>", declared=declared)


def bomb_pptx(size: int) -> bytes:
    """A deck whose one slide inflates to `size` bytes."""
    ns = b'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    return zip_bomb("ppt/slides/slide1.xml", size, b"<p:sld " + ns + b"><a:p><a:t>",
                    b"</a:t></a:p></p:sld>")


def fine_print_pdf(cell: str = "Standard return") -> bytes:
    """A one-page A4 notice: a title, a paragraph, a table, and a line of fine print (7 pt) that
    the offline OCR scores as harder to read."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("helvetica", size=18)
    pdf.cell(0, 12, "Refund policy", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, "Refunds are paid within 14 days of the return.")
    pdf.set_y(90)
    with pdf.table() as table:
        for row in (("Case", "Days"), (cell, "14"), ("Damaged item", "7")):
            cells = table.row()
            for value in row:
                cells.cell(value)
    pdf.set_y(200)
    pdf.set_font("helvetica", size=7)
    pdf.cell(0, 4, "Fine print: a restocking fee of 15 percent applies.")
    return bytes(pdf.output())
