"""The kernel's side of the JupyterLab extension, in a real kernel: the spend comm and
marked generated cells (`mistral_magic.notebook.labcomm`)."""

from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

from mistral_magic.money.usage import CallRecord
from mistral_magic.notebook import labcomm

# An answer of 400 tokens at 10 ms a token: several of the comm's half-second looks at
# what the budget holds fall inside the call.
SLOW = {"token_delay_ms": 10, "answer_tokens": 400}


class KernelRun:
    """A real ipykernel in a temporary folder, with what its iopub sent per request."""

    def __init__(self, folder):
        env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY",)}
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(folder), env=env)

    def execute(self, code: str, cell_id: str | None = None) -> tuple[dict, list[dict]]:
        """Run `code` (with the cell id Jupyter front ends send); its reply and iopub messages."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content,
                                  metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        messages, reply = [], None
        while True:
            sent = self.kc.get_iopub_msg(timeout=120)
            if sent["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                if sent["msg_type"].startswith("comm"):  # sent from another thread
                    messages.append(sent)
                continue
            messages.append(sent)
            if sent["msg_type"] == "status" and sent["content"]["execution_state"] == "idle":
                break
        while reply is None:
            answer = self.kc.get_shell_msg(timeout=120)
            if answer["parent_header"]["msg_id"] == msg["header"]["msg_id"]:
                reply = answer
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply, messages

    def late_comm_messages(self) -> list[dict]:
        """Comm messages that arrived after their cell ended (a throttled last send)."""
        found = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                sent = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if found:
                    break
                continue
            if sent["msg_type"] == "comm_msg":
                found.append(sent)
        return found

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    run = KernelRun(tmp_path_factory.mktemp("labcomm"))
    try:
        yield run
    finally:
        run.stop()


def spend_of(messages: list[dict]) -> list[dict]:
    out = []
    for msg in messages:
        if msg["msg_type"] == "comm_open" and msg["content"]["target_name"] == labcomm.TARGET:
            out.append(msg["content"]["data"])
        elif msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("type") == "spend":
            out.append(msg["content"]["data"])
    return out


def test_load_ext_opens_the_comm_and_calls_update_the_spend_while_they_run(kernel):
    _, messages = kernel.execute("%load_ext mistral_magic")
    opened = [m for m in messages if m["msg_type"] == "comm_open"]
    assert [m["content"]["target_name"] for m in opened] == [labcomm.TARGET]
    first = opened[0]["content"]["data"]
    assert first["type"] == "spend" and first["version"] == labcomm.VERSION
    assert first["calls"] == 0 and first["spent_usd"] == 0 and first["budget_usd"] is None

    kernel.execute("import mistral_magic.calls.backend\n"
                   f"mistral_magic.calls.backend.offline_server().set_faults({SLOW!r})\n"
                   "%config MistralMagics.budget_usd = 0.5")
    _, messages = kernel.execute("%%mistral\nExplain gradient descent.")
    spends = spend_of(messages) + spend_of(kernel.late_comm_messages())
    during = [s for s in spends if s["running"] and s["held_usd"] > 0]
    assert during, f"nothing showed the call under way: {spends}"
    assert during[0]["calls"] == 0 and during[0]["budget_usd"] == 0.5
    last = spends[-1]
    assert not last["running"] and last["held_usd"] == 0 and last["calls"] == 1
    assert 0 < last["spent_usd"] < 0.5 and last["cost_known"]
    [model] = last["models"]
    assert model["calls"] == 1 and model["completion_tokens"] == SLOW["answer_tokens"]
    assert model["cost"] == last["spent_usd"]


def test_generated_code_is_marked_with_the_cell_that_made_it(kernel):
    kernel.execute("%load_ext mistral_magic")
    kernel.execute("mistral_magic.calls.backend.offline_server().set_faults(None)")
    reply, _ = kernel.execute("%%mistral --format code\nWrite a function that adds two numbers.",
                              cell_id="cell-a")
    [payload] = reply["content"]["payload"]
    assert payload["source"] == "set_next_input" and payload["replace"] is False
    assert payload["mistral_magic"] == {"generated_by": "cell-a", "kind": "code"}
    assert "def " in payload["text"]

    reply, _ = kernel.execute("%%mistral --fim\ndef mean(values):\n    <FILL>", cell_id="cell-b")
    [payload] = reply["content"]["payload"]
    assert payload["mistral_magic"] == {"generated_by": "cell-b", "kind": "fim"}
    assert payload["text"].startswith("def mean(values):")

    # A front end that sends no cell id gets today's payload, unmarked.
    reply, _ = kernel.execute("%%mistral --format code\nWrite a function that adds two numbers.")
    [payload] = reply["content"]["payload"]
    assert "mistral_magic" not in payload and "def " in payload["text"]


def test_a_closed_comm_stops_sending_and_unloading_closes_it(kernel):
    kernel.execute("%load_ext mistral_magic")
    _, messages = kernel.execute("%unload_ext mistral_magic")
    assert [m for m in messages if m["msg_type"] == "comm_close"]
    _, messages = kernel.execute("%load_ext mistral_magic")
    [opened] = [m for m in messages if m["msg_type"] == "comm_open"]
    # The front end closes the comm (as JupyterLab does without the extension): no more sends.
    comm_id = opened["content"]["comm_id"]
    kernel.kc.shell_channel.send(kernel.kc.session.msg(
        "comm_close", {"comm_id": comm_id, "data": {}}))
    _, messages = kernel.execute("%%mistral\nHello")
    assert not [m for m in messages if m["msg_type"] == "comm_msg"]


class RecordingComm:
    """What a comm sends, kept (comm.create_comm is where kernels plug their comms in)."""

    def __init__(self, **kwargs):
        self.opened = kwargs
        self.messages: list[dict] = []
        self.closed = False

    def send(self, data):
        self.messages.append(data)

    def on_msg(self, callback):
        self.on_message = callback

    def on_close(self, callback):
        self.on_closed = callback

    def close(self):
        self.closed = True


def test_many_calls_send_a_bounded_number_of_messages_ending_with_all_of_them(ip, monkeypatch):
    import comm

    made = []

    def create_comm(**kwargs):
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    import mistral_magic

    session = mistral_magic.session()
    link = labcomm.SpendComm(ip, session)
    try:
        started = time.monotonic()
        for _ in range(500):
            session.ledger.record(CallRecord(model="mistral-small-latest", prompt_tokens=10,
                                             completion_tokens=5, cost=0.001))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 10
        while (not made[0].messages or made[0].messages[-1]["calls"] != 500) \
                and time.monotonic() < deadline:
            time.sleep(0.05)  # the throttled last message is due within MIN_INTERVAL_S
        sent = made[0].messages
        assert sent[-1]["calls"] == 500 and abs(sent[-1]["spent_usd"] - 0.5) < 1e-9
        # at most one message per interval, plus the first and the trailing one
        assert len(sent) <= 2 + (elapsed + 1) / labcomm.MIN_INTERVAL_S
        session.ledger.clear()
        link.changed()
        deadline = time.monotonic() + 10
        while sent[-1]["calls"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent[-1]["calls"] == 0 and sent[-1]["models"] == []
    finally:
        link.close()
    assert made[0].closed
