"""What a user meets in a real, headless kernel (nbclient), terminal output included."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from standalone import KEY, standalone_server

INTERRUPT_AFTER = 6

CELLS = [
    "%load_ext mistral_magic",
    # 1: no stdin in a headless run
    "%mistral key",
    # 2: pandas imported in the very cell that uses the accessor
    "import sys\n"
    "print('pandas loaded before:', 'pandas' in sys.modules)\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'text': ['Ada is 36 years old.', 'Bob is 41 years old.']})\n"
    "people = df.mistral.extract('{text}', schema='name, age int', progress=False)\n"
    "print(people['age'].tolist(), people['_error'].isna().all())",
    # 3: a server in its own process, a little slow, so an interrupt lands mid-run
    "%config MistralMagics.server_url = '{url}'\n"
    f"%config MistralMagics.server_key = '{KEY}'",
    # 4: the kernel's interrupt, fired when a number of rows are done (an event, not a timer)
    "import _thread, mistral_magic\n"
    "finished = []\n"
    "def interrupt_when_done(record):\n"
    "    if record.status == 'ok':\n"
    "        finished.append(record)\n"
    f"        if len(finished) == {INTERRUPT_AFTER}:\n"
    "            _thread.interrupt_main()\n"
    "stop_listening = mistral_magic.session().ledger.subscribe(interrupt_when_done)\n"
    "rows = pd.DataFrame({'text': [f'Person {i} is {20 + i} years old.' for i in range(40)]})\n"
    "out = rows.mistral.extract('{text}', schema='name, age int', concurrency=2)",
    # 5: the cell above ended as interrupted; its rows done are the error's `partial`, and
    # the same call again finishes the rest
    "stop_listening()\n"
    "out = sys.last_value.partial\n"
    "again = rows.mistral.extract('{text}', schema='name, age int', progress=False)\n"
    "print(int(out['_error'].isna().sum()), int(again['_error'].isna().sum()))",
]


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory):
    """Run the notebook once in a real kernel; keep its cells and what its terminal showed."""
    tmp = tmp_path_factory.mktemp("kernel")
    terminal = tmp / "kernel-terminal.txt"
    with standalone_server("--latency-ms", "40") as url:
        cells = [new_code_cell(c.replace("{url}", url) if "server_url" in c else c)
                 for c in CELLS]
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3"}})
        client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(tmp)}})
        with terminal.open("w") as sink:
            # what the terminal that started the kernel would show
            client.execute(stdout=sink, stderr=sink)
    nbformat.write(nb, tmp / "kernel.ipynb")
    return nb, terminal.read_text()


def outputs(cell) -> list[dict]:
    return [dict(o) for o in cell.get("outputs", [])]


def text(cell) -> str:
    parts = []
    for output in outputs(cell):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "".join(parts)


def test_key_prompt_in_a_headless_kernel_is_one_line(kernel_run):
    nb, _ = kernel_run
    (error,) = [o for o in outputs(nb.cells[1]) if o["output_type"] == "error"]
    assert error["ename"] == "ConfigError"
    assert "MISTRAL_API_KEY" in error["evalue"] and ".env" in error["evalue"]
    assert len(error["traceback"]) == 1  # one line, no stack
    assert "StdinNotImplementedError" not in json.dumps(error)


def test_pandas_imported_in_the_same_cell_has_the_accessor(kernel_run):
    nb, _ = kernel_run
    cell = nb.cells[2]
    assert not [o for o in outputs(cell) if o["output_type"] == "error"], text(cell)
    assert "pandas loaded before: False" in text(cell)
    assert "[36, 41] True" in text(cell)


def test_an_interrupted_extraction_ends_with_one_line(kernel_run):
    nb, terminal = kernel_run
    cell = nb.cells[4]
    (error,) = [o for o in outputs(cell) if o["output_type"] == "error"]
    assert error["ename"] == "Interrupted" and len(error["traceback"]) == 1
    assert "of 40 rows done" in error["evalue"] and "left; run the same call again" in error["evalue"]
    shown = text(cell)
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    # nothing from the client reached the terminal that started the kernel
    ours = [line for line in terminal.splitlines() if not line.startswith("[IPKernelApp]")]
    assert ours == [], terminal
    printed = "".join(o["text"] for o in outputs(nb.cells[5]) if o["output_type"] == "stream")
    done, finished = printed.split()
    assert int(done) >= INTERRUPT_AFTER and int(done) < 40 and int(finished) == 40
