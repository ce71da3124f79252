"""The README's two set-up commands stay true: the Lab one really serves the quickstart."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
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
    # Port, token and "no browser" come from the environment, so the command runs as written.
    env.update(JUPYTER_PORT=str(port), JUPYTER_TOKEN="readme-test", BROWSER="true",
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
        # Given a notebook, Lab serves its folder and opens it; the file is there to open.
        listing = httpx.get(f"{base}/api/contents", params={"token": "readme-test"}).json()
        names = {item["name"] for item in listing["content"]}
        assert "quickstart.ipynb" in names or "notebooks" in names
    finally:
        lab_process.terminate()
        lab_process.wait(20)
