"""Pictures in a cell and in a column: every input kind, downscaling, tokens, models, follow-ups."""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import run
from offline_documents import picture

import mistral_magic


def session(ip):
    return mistral_magic.session()


def sent_pictures(ip) -> list[str]:
    """The data URLs (or URLs) of the pictures in the last request's user messages."""
    found = []
    for message in session(ip).last.request["messages"]:
        if isinstance(message.get("content"), list):
            found += [c["image_url"] for c in message["content"] if c.get("type") == "image_url"]
    return found


def decoded(url: str):
    from PIL import Image

    head, _, data = url.partition(",")
    return head, Image.open(io.BytesIO(base64.b64decode(data)))


def answer_text(ip) -> str:
    return session(ip).last.text


@pytest.mark.parametrize("setup, name, fmt", [
    ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
     "fig, ax = plt.subplots(figsize=(4, 3)); ax.plot([1, 3, 2]); x = fig", "x", "PNG"),
    ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
     "fig, ax = plt.subplots(figsize=(4, 3)); ax.plot([1, 3, 2]); x = ax", "x", "PNG"),
    ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
     "plt.figure(figsize=(4, 3)); plt.plot([1, 3, 2])", "plt", "PNG"),
    ("from PIL import Image; x = Image.new('RGB', (300, 200), (10, 120, 200))", "x", "PNG"),
    ("import numpy as np; x = np.random.default_rng(0).random((120, 160, 3))", "x", "JPEG"),
    ("import numpy as np; x = np.zeros((50, 80), dtype=np.uint8)", "x", "PNG"),
    (f"x = {picture(64, 48)!r}", "x", "PNG"),
    (f"x = {picture(64, 48, 'JPEG')!r}", "x", "JPEG"),
    (f"from IPython.display import Image; x = Image(data={picture(64, 48)!r})", "x", "PNG"),
    (f"import pathlib; pathlib.Path('shot.png').write_bytes({picture(64, 48)!r})", "shot.png", "PNG"),
])
def test_every_input_kind_is_sent_as_one_picture(ip, setup, name, fmt):
    run(ip, setup)
    run(ip, f"%%mistral --image {name}\nWhat does this show?")
    [url] = sent_pictures(ip)
    head, img = decoded(url)
    assert head == f"data:image/{fmt.lower()};base64" and img.format == fmt
    assert "1 image received" in answer_text(ip)


def test_png_and_jpeg_that_fit_are_sent_byte_for_byte(ip):
    data = picture(64, 48, "JPEG")
    ip.user_ns["x"] = data
    run(ip, "%%mistral --image x\nWhat is it?")
    [url] = sent_pictures(ip)
    assert base64.b64decode(url.partition(",")[2]) == data


def test_a_url_is_sent_as_it_is_and_counted_as_a_typical_picture(ip):
    run(ip, "%%mistral --image https://example.com/cat.png --dry-run\nWhat is it?")
    shown = json.dumps([f["data"] for f in ip.display_pub.finals()])
    assert "https://example.com/cat.png" in shown and "counted as a typical picture" in shown
    assert session(ip).ledger.records == []


def test_big_pictures_are_downscaled_and_their_tokens_estimated_exactly(ip):
    from PIL import Image

    from mistral_magic.money.tokens import image_tokens

    ip.user_ns["big"] = Image.new("RGB", (3000, 1500), (200, 30, 30))
    run(ip, "%%mistral --image big\nDescribe it.")
    [url] = sent_pictures(ip)
    assert decoded(url)[1].size == (1024, 512)
    answer = session(ip).last
    assert image_tokens(url) == (1024 // 16 + 1) * (512 // 16)
    estimate = session(ip).estimate(answer.request)
    assert estimate.prompt_tokens == answer.prompt_tokens  # the image token rule, exactly
    assert answer.cost > session(ip).prices.cost(answer.model, answer.prompt_tokens - image_tokens(url), 0)


def test_many_images_repeat_and_show_one_thumbnail_sheet(ip):
    from PIL import Image

    ip.user_ns["a"] = Image.new("RGB", (400, 300), "red")
    ip.user_ns["b"] = Image.new("RGB", (300, 400), "blue")
    run(ip, "%%mistral --image a --image b\nCompare them.")
    assert len(sent_pictures(ip)) == 2 and "2 images received" in answer_text(ip)
    sheets = [f["data"] for f in ip.display_pub.finals() if "image/png" in f["data"]]
    assert len(sheets) == 1
    thumb = Image.open(io.BytesIO(base64.b64decode(sheets[0]["image/png"])))
    assert thumb.height <= 96 and thumb.width < 400
    said = [f["data"].get("text/plain", "") for f in ip.display_pub.finals()]
    assert any("a: 400×300 PNG" in s and "b: 300×400 PNG" in s for s in said)


def test_the_saved_outputs_hold_no_picture_data(ip):
    from PIL import Image

    ip.user_ns["a"] = Image.new("RGB", (800, 600), "green")
    run(ip, "%%mistral --image a\nWhat colour?")
    url = sent_pictures(ip)[0]
    payload = url.partition(",")[2]
    for output in ip.display_pub.finals():
        assert payload[:200] not in json.dumps(output)


def test_a_model_that_cannot_see_is_refused_naming_models_that_can(ip):
    ip.user_ns["x"] = picture(32, 32)
    result = run(ip, "%%mistral -m open-mistral-nemo --image x\nWhat is it?", ok=False)
    message = str(result.error_in_exec)
    assert "open-mistral-nemo cannot see images" in message and "use -m" in message
    assert "\n" not in message
    assert len(session(ip).ledger.records) == 0


def test_bad_inputs_are_one_line_errors(ip):
    ip.user_ns["n"] = 42
    for arg, said in [("n", "holds a int, not a picture"), ("missing.png", "no file"),
                      ("x", "not a picture Pillow can read")]:
        ip.user_ns["x"] = b"not a picture"
        result = run(ip, f"%%mistral --image {arg}\nHi", ok=False)
        assert said in str(result.error_in_exec), result.error_in_exec
    assert len(session(ip).ledger.records) == 0


def test_follow_ups_keep_the_pictures_and_undo_drops_them(ip):
    ip.user_ns["x"] = picture(64, 48)
    run(ip, "%%mistral --image x\nWhat is it?")
    run(ip, "%%mistral\nAnd its colour?")
    assert len(sent_pictures(ip)) == 1
    assert "1 earlier image" in answer_text(ip)
    run(ip, "%mistral undo")
    run(ip, "%mistral undo")
    run(ip, "%%mistral\nAnything?")
    assert sent_pictures(ip) == []


def test_rerunning_the_cell_replaces_its_turn(ip):
    ip.user_ns["x"] = picture(64, 48)
    run(ip, "%%mistral --image x\nWhat is it?", cell_id="c1")
    run(ip, "%%mistral --image x\nWhat is it?", cell_id="c1")
    run(ip, "%%mistral\nAnd?", cell_id="c2")
    assert len(sent_pictures(ip)) == 1


def test_extract_reads_a_column_of_pictures(ip, tmp_path):
    import pandas as pd

    (tmp_path / "a.png").write_bytes(picture(40, 30))
    df = pd.DataFrame({"note": ["receipt one", "receipt two", "receipt three"],
                       "img": ["a.png", picture(50, 50, "JPEG"), "gone.png"]})
    out = df.mistral.extract("Read this: {note}", schema="shop, total float", image="img",
                             progress=False)
    assert list(out["_error"].isna()) == [True, True, False]
    assert "no file" in out["_error"][2]
    requests = [r for r in session(ip).ledger.records if r.kind == "extract"]
    assert len(requests) == 2
    with pytest.raises(mistral_magic.errors.ConfigError, match="cannot see images"):
        df.mistral.extract("{note}", schema="shop", image="img", model="open-mistral-nemo")


def test_extract_with_pictures_goes_through_the_batch_api(ip):
    import pandas as pd

    df = pd.DataFrame({"note": ["first", "second"], "img": [picture(320, 320), picture(320, 320)]})
    out = df.mistral.extract("Read this: {note}", schema="shop", image="img", progress=False,
                             batch=True)
    assert out["_error"].isna().all()
    records = [r for r in session(ip).ledger.records if r.batch]
    assert len(records) == 2 and all(r.prompt_tokens > 420 for r in records)  # 21×20 patches + text
