"""Stop means stop: the kernel's interrupt ends the cell as interrupted, after what arrived is kept.

In a real kernel the execute reply is then an error, so Jupyter drops the cells queued
after it; in a shell the cell's error is an `Interrupted` (a KeyboardInterrupt) shown
as one line, for every kind of call.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from queue import Empty

import pandas as pd
import pytest
from conftest import run
from jupyter_client.manager import start_new_kernel
from standalone import KEY, standalone_server

import mistral_magic
from mistral_magic.errors import Interrupted

# -- in a real kernel, with a cell queued behind -------------------------------------------


@pytest.fixture(scope="module")
def slow_url():
    """A server in its own process that streams a long answer slowly."""
    with standalone_server("--token-delay-ms", "20", "--answer-tokens", "1500") as url:
        yield url


@pytest.fixture
def kernel(tmp_path, slow_url):
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        setup = ("%load_ext mistral_magic\n"
                 f"%config MistralMagics.server_url = {slow_url!r}\n"
                 f"%config MistralMagics.server_key = {KEY!r}\n"
                 "import pandas as pd")
        reply = client.execute_interactive(setup, timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def interrupt_when_output(manager, client, msg_id: str, kinds: tuple[str, ...]) -> list[dict]:
    """Read iopub until the cell `msg_id` shows one of `kinds`, interrupt the kernel, and return
    every iopub message of that cell until it is idle."""
    seen: list[dict] = []
    interrupted = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if not interrupted and msg["msg_type"] in kinds:
            manager.interrupt_kernel()
            interrupted = True
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return seen
    raise AssertionError(f"the cell never finished: {[m['msg_type'] for m in seen]}")


def replies(client, *msg_ids: str) -> dict[str, dict]:
    got: dict[str, dict] = {}
    while len(got) < len(msg_ids):
        msg = client.get_shell_msg(timeout=60)
        if msg["parent_header"].get("msg_id") in msg_ids:
            got[msg["parent_header"]["msg_id"]] = msg["content"]
    return got


def printed(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def test_an_interrupted_answer_ends_the_cell_and_the_queued_cell_is_dropped(kernel):
    manager, client = kernel
    first = client.execute("get_ipython().run_cell_magic('mistral', '', 'A long essay, please.')\n"
                           "print('after')")
    queued = client.execute("print('the queued cell ran')")
    seen = interrupt_when_output(manager, client, first, ("update_display_data",))
    got = replies(client, first, queued)
    assert got[first]["status"] == "error" and got[first]["ename"] == "Interrupted"
    assert len(got[first]["traceback"]) == 1  # one line, no stack
    assert "partial answer is kept in chat 'default'" in got[first]["evalue"]
    assert got[queued]["status"] == "aborted"
    assert "after" not in printed(seen)
    # The partial answer was kept and shown, marked; its ledger row was written.
    finals = [m for m in seen if m["msg_type"] == "update_display_data"]
    assert "interrupted" in finals[-1]["content"]["data"]["text/plain"]
    check = client.execute_interactive(
        "import mistral_magic\n"
        "s = mistral_magic.session()\n"
        "print(s.ledger.records[-1].status, s.chats.get('default').turns[-1].status)",
        timeout=60, output_hook=lambda msg: seen.append(msg))
    assert check["content"]["status"] == "ok"
    assert printed(seen).strip().endswith("interrupted interrupted")


def test_an_interrupted_extraction_ends_the_cell_and_the_queued_cell_is_dropped(kernel):
    manager, client = kernel
    first = client.execute(
        "import mistral_magic\n"
        "mistral_magic.session().ledger.subscribe(lambda record: print('paid', flush=True))\n"
        "rows = pd.DataFrame({'text': [f'Person {i} is {20 + i} years old.' for i in range(60)]})\n"
        "out = rows.mistral.extract('{text}', schema='name, age int', concurrency=2)\n"
        "print('after')")
    queued = client.execute("print('the queued cell ran')")
    # A row paid for means rows are under way.
    seen = interrupt_when_output(manager, client, first, ("stream",))
    got = replies(client, first, queued)
    assert got[first]["status"] == "error" and got[first]["ename"] == "Interrupted"
    assert re.fullmatch(r"\d+ of 60 rows done, \d+ left; run the same call again to finish them "
                        r"\(the rows done come from the cache, at \$0\)", got[first]["evalue"])
    assert got[queued]["status"] == "aborted"
    assert "after" not in printed(seen)


# -- every kind of call, in a shell ------------------------------------------------------------


def signal_when(condition) -> threading.Thread:
    """A real SIGINT to this thread (as Jupyter sends) once `condition()` holds."""
    main = threading.main_thread().ident

    def watch():
        for _ in range(6000):
            if condition():
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def sent_to(server, path: str):
    before = server.request_count(path)
    return lambda: server.request_count(path) > before


def test_an_interrupted_fim_cell_makes_no_next_cell(ip, magic_server):
    magic_server.set_faults({"ttft_ms": 20_000})
    signal_when(sent_to(magic_server, "/v1/fim/completions"))
    result = run(ip, "%%mistral --fim -o code\ndef mean(values):\n    <FILL>\n", ok=False)
    assert isinstance(result.error_in_exec, Interrupted)
    assert str(result.error_in_exec) == "Stopped before any answer arrived"
    assert ip.payload_manager.read_payload() == [] and "code" not in ip.user_ns
    assert mistral_magic.session().ledger.records[-1].status == "interrupted"


def test_an_interrupted_fix_ends_the_cell(ip, magic_server):
    run(ip, "1 / 0", ok=False)
    magic_server.set_faults({"ttft_ms": 20_000})
    signal_when(sent_to(magic_server, "/v1/chat/completions"))
    result = run(ip, "%mistral fix", ok=False)
    assert isinstance(result.error_in_exec, Interrupted)
    assert ip.payload_manager.read_payload() == []


def test_an_interrupted_embedding_ends_the_call_and_keeps_the_rows_done(ip, magic_server):
    texts = pd.DataFrame({"text": [f"ticket number {i} about refunds" for i in range(40)]})
    magic_server.set_faults({"latency_ms": 20_000})
    signal_when(sent_to(magic_server, "/v1/embeddings"))
    with pytest.raises(Interrupted, match=r"0 of 40 rows done, 40 left") as stopped:
        texts.mistral.embed("text", progress=False)
    assert stopped.value.partial["_error"].str.contains("interrupted").all()
    assert mistral_magic.session().budget.reserved == 0


def test_an_interrupted_ocr_read_ends_the_cell(ip, magic_server, tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Invoice 7, total 12.50 EUR")
    pdf.output(str(tmp_path / "invoice.pdf"))
    run(ip, "%mistral ocr invoice.pdf")  # uploaded once: the next read only calls OCR
    magic_server.set_faults({"latency_ms": 20_000})
    signal_when(sent_to(magic_server, "/v1/ocr"))
    result = run(ip, "%mistral ocr invoice.pdf -o inv", ok=False)
    assert isinstance(result.error_in_exec, Interrupted) and "inv" not in ip.user_ns
    session = mistral_magic.session()
    assert session.ledger.records[-1].status == "interrupted"
    assert session.budget.reserved == 0
