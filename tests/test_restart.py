"""Restart & Run All in a real kernel (nbclient): the second run pays for nothing.

The notebook runs once, its kernel is shut down, and it runs again in a new kernel
in the same folder. Its first part uses the kernel's own offline server (a new one,
on another port, in each kernel); its second a server in this test's process set as
`server_url`, whose request count the test reads.
"""

from __future__ import annotations

import json

from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from mistral_magic.offline import OfflineServer
from mistral_magic.store import Store

KEY = "sk-restart-4b1e9d2c7a"

CELLS = [
    "%load_ext mistral_magic",
    "%%mistral --max-tokens 60\nExplain overfitting in two sentences.",
    "%%mistral --max-tokens 60\nAnd how do I spot it?",
    '%%mistral --schema "name, age int" -o person\nAda Lovelace was 36.',
    "import pandas as pd\n"
    "df = pd.DataFrame({'text': ['Ada is 36.', 'Bob is 41.', 'Cy is 29.']})\n"
    "people = df.mistral.extract('{text}', schema='name, age int', progress=False)",
    "from mistral_magic.calls import backend\n"
    "offline_started = backend.offline_running()\n"
    "%config MistralMagics.server_url = '{url}'\n"
    f"%config MistralMagics.server_key = '{KEY}'",
    "%%mistral --max-tokens 40 -c hosted\nWhat is a confusion matrix?",
    "hosted = df.mistral.extract('From: {text}', schema='name, age int', progress=False)",
    "import json, mistral_magic\n"
    "s = mistral_magic.session()\n"
    "every = get_ipython().run_line_magic('mistral', 'usage --all')\n"
    "print(json.dumps({\n"
    "    'ledger': [[r.kind, r.cached, r.cost] for r in s.ledger.records],\n"
    "    'offline_started': offline_started,\n"
    "    'turns': [t.answer for name in ('default', 'hosted') for t in s.chats.get(name).turns],\n"
    "    'person': person.to_dict('records'),\n"
    "    'ages': people['age'].tolist() + hosted['age'].tolist(),\n"
    "    'sessions': int(every['session'].nunique()),\n"
    "}))",
    "%mistral cache export lesson-answers.sqlite",
]


def report(nb) -> dict:
    cell = nb.cells[-2]
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return json.loads(cell.outputs[-1]["text"])


def test_restart_and_run_all_pays_nothing_twice(tmp_path, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    # What Jupyter tells a kernel about its notebook: the export takes this notebook's answers.
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "lesson.ipynb"))
    # The kernels' cache folder (the vocabulary, the model names remembered): their own.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with OfflineServer(api_key=KEY) as server:
        cells = [c.replace("{url}", server.url) for c in CELLS]
        nb = new_notebook(cells=[new_code_cell(c) for c in cells],
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
        client = NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
        def asked() -> int:  # requests for answers; the first kernel also lists the models
            return server.request_count() - server.request_count("/v1/models")

        client.execute()
        first = report(nb)
        sent = asked()
        client.execute()  # a new kernel: Restart & Run All
        second = report(nb)
        assert asked() == sent  # not one request more
        # The second kernel remembers the names the first one listed (calls/listings.py).
        assert server.request_count("/v1/models") == 1

    assert sent == 4  # one cell and three rows went to the server the first time
    assert not any(cached for _, cached, _ in first["ledger"])
    assert all(cost > 0 for _, _, cost in first["ledger"])
    # The second run: every cell answered from the cache at $0; the rows resumed.
    assert second["ledger"] and all(cached and cost == 0 for _, cached, cost in second["ledger"])
    # The cells' calls came back (a re-ask too, if one was made); the rows are no calls now.
    assert [row[0] for row in second["ledger"]] == [row[0] for row in first["ledger"]
                                                    if row[0] == "chat"]
    assert second["offline_started"] is False  # the kernel never even started its server
    assert second["turns"] == first["turns"] and second["person"] == first["person"]
    assert second["ages"] == first["ages"] == [36, 41, 29] * 2
    assert second["sessions"] == 2  # usage --all: both kernels' calls
    footer = [o for o in nb.cells[1].outputs if "mistral_magic" in o.get("metadata", {})]
    assert "cached · $0 (saved $" in footer[-1]["data"]["text/plain"]
    with Store(tmp_path / "lesson-answers.sqlite") as shipped:
        assert len(shipped) == len(Store(tmp_path / ".mistral_magic").keys())
    assert (tmp_path / ".mistral_magic" / ".gitignore").read_text() == "*\n"
    assert KEY.encode() not in (tmp_path / ".mistral_magic" / "store.sqlite").read_bytes()
