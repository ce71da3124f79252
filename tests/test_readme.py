"""The README's two set-up commands stay true: the Lab one really serves the quickstart."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def readme_command(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {name} -->\s*```\n(.*?)\n```\s*<!-- /{name} -->", text, re.S)
    assert block, f"README.md has no {name} block"
    return block.group(1).strip()


def test_test_command_installs_the_test_extra():
    assert readme_command("test-command").startswith('pip install -e ".[test]" && ')


def test_lab_command_serves_the_quickstart(tmp_path):
    command = readme_command("lab-command")
    install, _, lab = command.partition(" && ")
    assert install == 'pip install -e ".[lab]"'
    argv = shlex.split(lab)
    assert argv[:2] == ["jupyter", "lab"] and argv[-1] == "notebooks/quickstart.ipynb"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"}
    # Port, token and the "browser" come from the environment, so the command runs as
    # written; the browser is a script that notes the page Lab asks it to open.
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, pathlib\n"
                       f"pathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n")
    env.update(JUPYTER_PORT=str(port), JUPYTER_TOKEN="readme-test",
               BROWSER=f"{sys.executable} {browser} %s",
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    lab_process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/api/status"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(url, params={"token": "readme-test"}, timeout=5)
                break
            except httpx.TransportError:
                assert lab_process.poll() is None, "jupyter lab exited"
                assert time.monotonic() < deadline, "jupyter lab did not answer in 60 s"
                time.sleep(0.5)
        assert response.status_code == 200
        # Lab asks the browser to open the notebook (through a local redirect page)...
        while not opened.exists():
            assert lab_process.poll() is None, "jupyter lab exited"
            assert time.monotonic() < deadline, "jupyter lab opened no browser page"
            time.sleep(0.5)
        page = opened.read_text()
        target = Path(page.removeprefix("file://")).read_text() if page.startswith("file:") else page
        match = re.search(r"/lab/tree/([^\s\"'?#]+\.ipynb)", target)
        assert match, f"the page Lab opens is no notebook: {target[:300]}"
        # ...and serves that path as the README's quickstart, cell for cell.
        reply = httpx.get(f"{base}/api/contents/{match.group(1)}",
                          params={"token": "readme-test"})
        assert reply.status_code == 200, (reply.status_code, reply.text[:300])
        served = reply.json()
        assert served["type"] == "notebook" and served["name"] == "quickstart.ipynb"
        expected = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text())
        assert [c["source"] for c in served["content"]["cells"]] == [
            "".join(c["source"]) for c in expected["cells"]]
    finally:
        lab_process.terminate()
        lab_process.wait(20)
