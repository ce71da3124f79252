"""Values from data are data: a path in a DataFrame column is read only inside a root folder.

A scraped or shared CSV holding ``/etc/passwd`` or ``~/.ssh/id_rsa`` must not make
``df.mistral.ocr`` or ``extract(image=...)`` read those files and send them away. Here the
"secrets" live in a folder beside the working directory and in a fake home.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import run
from offline_documents import invoice_pdf, picture

import mistral_magic

SECRET = "root:x:0:0:secret-line-that-must-stay-home"


def session():
    return mistral_magic.session()


@pytest.fixture
def places(tmp_path, tmp_path_factory, monkeypatch):
    """The working directory (tmp_path) with good files, a folder beside it, and a home."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "passwd").write_text(SECRET)
    (outside / "real.pdf").write_bytes(invoice_pdf(customer="Grace Hopper"))
    (outside / "far.png").write_bytes(picture(30, 30))
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text(SECRET)
    (home / "pic.png").write_bytes(picture(30, 30))
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "inside.pdf").write_bytes(invoice_pdf())
    (tmp_path / "inside.png").write_bytes(picture(30, 30))
    (tmp_path / "notes").write_text("Meeting notes: the budget is approved.")
    (tmp_path / "blob").write_bytes(bytes(range(256)) * 8)
    os.symlink(outside / "passwd", tmp_path / "link.txt")
    os.symlink(outside / "far.png", tmp_path / "link.png")
    return tmp_path, outside


def test_ocr_reads_a_column_only_inside_the_root(ip, places):
    here, outside = places
    rows = {"inside": "inside.pdf", "absolute": str(here / "inside.pdf"),
            "passwd": str(outside / "passwd"), "ssh": "~/.ssh/id_rsa", "link": "link.txt",
            "dotdot": f"../{outside.name}/passwd", "blob": "blob", "notes": "notes"}
    df = pd.DataFrame({"path": list(rows.values())}, index=list(rows))
    out = df.mistral.ocr("path", progress=False)
    assert "Ada Lovelace" in out.loc["inside", "text"] and out.loc["absolute", "_error"] is None
    assert "budget is approved" in out.loc["notes", "text"]  # text by its bytes, not its name
    for row in ("passwd", "link", "dotdot"):
        error = out.loc[row, "_error"]
        assert "outside the root folder" in error and str(here) in error and "root=" in error, error
    assert "~ is not expanded" in out.loc["ssh", "_error"]
    assert "not a format" in out.loc["blob", "_error"]
    assert not out["text"].fillna("").str.contains("secret-line").any()
    known = [d.name for d in session().uploads.known.values()]
    assert "passwd" not in known and "id_rsa" not in known
    # root= widens the folder: the file beside the working directory can now be read.
    wider = pd.DataFrame({"path": [str(outside / "real.pdf"), "inside.pdf"]})
    out = wider.mistral.ocr("path", progress=False, root=str(here.parent))
    assert out["_error"].isna().all() and "Grace Hopper" in out["text"][0]


def test_extract_reads_pictures_only_inside_the_root(ip, places):
    here, outside = places
    df = pd.DataFrame({"note": ["a", "b", "c", "d"],
                       "img": ["inside.png", str(outside / "far.png"), "link.png", "~/pic.png"]})
    out = df.mistral.extract("Read: {note}", schema="shop", image="img", progress=False)
    assert out["_error"][0] is None
    assert "outside the root folder" in out["_error"][1] and "root=" in out["_error"][1]
    assert "outside the root folder" in out["_error"][2]
    assert "~ is not expanded" in out["_error"][3]
    assert len([r for r in session().ledger.records if r.kind == "extract"]) == 1
    out = df.iloc[:2].mistral.extract("Read: {note}", schema="shop", image="img",
                                      progress=False, root=str(outside.parent))
    assert out["_error"].isna().all()


def test_a_root_that_is_no_folder_is_one_line(ip, places):
    df = pd.DataFrame({"path": ["inside.pdf"]})
    with pytest.raises(mistral_magic.errors.ConfigError, match="is not a folder"):
        df.mistral.ocr("path", progress=False, root="inside.pdf")


def test_a_path_typed_in_a_cell_is_the_users_choice(ip, places):
    here, outside = places
    run(ip, f"%mistral ocr {outside / 'real.pdf'} -o r")
    assert "Grace Hopper" in ip.user_ns["r"].text
    run(ip, f"%%mistral --file {outside / 'real.pdf'}\nWho is the customer?")
    assert "Grace Hopper" in session().last.text
