"""`%mistral sent`: what left the kernel, per call, as data: text, DataFrame columns and rows,
pictures and documents, the host and region; never a key or a signed URL."""

from __future__ import annotations

import pandas as pd
from conftest import run
from offline_documents import invoice_pdf, picture

import mistral_magic
from mistral_magic.calls.sent import where


def customers(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "name": [f"Customer {i}" for i in range(n)],
        "email": [f"c{i}@example.com" for i in range(n)],
        "review": [f"The kettle number {i} works well, five stars" for i in range(n)],
    }, index=[f"c{i}" for i in range(n)])


def sent(ip, *args: str) -> pd.DataFrame:
    return ip.run_line_magic("mistral", " ".join(("sent", *args)))


def test_a_cell_records_its_text_its_frame_and_where_it_went(ip, magic_server):
    ip.user_ns["people"] = customers(3)[["name", "review"]]
    run(ip, "%%mistral\nWhich customer is happiest? {people}")
    frame = sent(ip)
    assert len(frame) == 1
    row = frame.iloc[0]
    last = mistral_magic.session().last
    assert row["kind"] == "chat" and row["status"] == "ok" and row["model"] == "mistral-small-latest"
    assert row["host"] == "127.0.0.1" and row["region"] == "this machine (offline server)"
    assert row["characters"] == len(last.request["messages"][-1]["content"])
    assert row["prompt_tokens"] == last.prompt_tokens > 0
    assert row["frames"] == ["people (rows)"]
    assert row["columns"] == ["people.name", "people.review"] and row["rows"] == ["c0", "c1", "c2"]
    assert row["pictures"] == [] and row["documents"] == []
    # Answered from the cache in a fresh kernel: nothing left, nothing recorded.
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    run(ip, "%%mistral\nWhich customer is happiest? {people}")
    assert mistral_magic.session().last.cached and len(sent(ip)) == 0


def test_a_summary_records_every_column_and_only_the_sampled_rows(ip):
    ip.user_ns["people"] = customers(200)
    run(ip, "%%mistral --no-history\nWhat patterns do you see? {people}")
    row = sent(ip).iloc[0]
    assert row["frames"] == ["people (summary)"]
    assert row["columns"] == ["people.email", "people.name", "people.review"]
    assert len(row["rows"]) == 5 and set(row["rows"]) <= {f"c{i}" for i in range(200)}


def test_a_row_method_records_its_columns_and_each_rows_label(ip):
    df = customers(4)
    df.mistral.extract("What does this review rate? {review}", schema="product, stars int",
                       progress=False)
    frame = sent(ip)
    assert list(frame["kind"]) == ["extract"] * 4
    assert sorted(label for rows in frame["rows"] for label in rows) == list(df.index)
    assert all(columns == ["df.mistral.extract.review"] for columns in frame["columns"])
    # The user can show that no e-mail address left the kernel.
    by_column = sent(ip, "--columns")
    assert by_column.to_dict("records") == [{
        "frame": "df.mistral.extract", "column": "review", "calls": 4, "rows": 4,
        "forms": "rows", "hosts": "127.0.0.1"}]
    assert not any("example.com" in str(v) for v in frame.to_numpy().ravel())


def test_pictures_and_documents_by_name_and_bytes_never_a_signed_url(ip, tmp_path):
    png = picture(64, 48)
    ip.user_ns["shot"] = png
    (tmp_path / "invoice.pdf").write_bytes(invoice_pdf())
    run(ip, "%%mistral --image shot --file invoice.pdf\nDoes the picture match the invoice?")
    row = sent(ip).iloc[0]
    assert row["pictures"] == [f"shot ({len(png):,} bytes)"]
    size = (tmp_path / "invoice.pdf").stat().st_size
    assert row["documents"] == [f"invoice.pdf ({size:,} bytes)"]
    text = repr(sent(ip).to_dict("records"))
    session = mistral_magic.session()
    assert "http" not in text and "signature" not in text.lower()
    assert str(session.backend._key) not in text


def test_a_batch_job_records_its_file(ip):
    df = customers(3)
    df.mistral.extract("Rate: {review}", schema="stars int", batch=True, progress=False)
    frame = sent(ip)
    batch = frame[frame["kind"] == "batch"]
    assert len(batch) == 1 and batch["bytes"].iloc[0] > 0
    assert batch["rows"].iloc[0] == list(df.index)
    assert batch["columns"].iloc[0] == ["df.mistral.extract.review"]


def test_hosts_and_regions_of_la_plateforme_and_a_self_hosted_server(ip):
    session = mistral_magic.session()
    session.set_key("k" * 32)
    ip.run_line_magic("config", "MistralMagics.server = 'eu'")
    assert where(session) == ("api.eu.mistral.ai", "La Plateforme (eu)")
    ip.run_line_magic("config", "MistralMagics.server = 'global'")
    assert where(session) == ("api.mistral.ai", "La Plateforme (global)")
    ip.run_line_magic("config", "MistralMagics.server_url = 'http://user:pw@gpu-box:8000/v1?x=1'")
    assert where(session) == ("gpu-box:8000", "self-hosted server")
