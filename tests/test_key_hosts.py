"""The La Plateforme key goes only to Mistral's own hosts (issue 8, section 6)."""

from __future__ import annotations

import pytest
from conftest import run

import mistral_magic
from mistral_magic.calls.backend import SERVERS, Backend, is_mistral_host, key_for, resolve
from mistral_magic.offline import OfflineServer

PLATFORM_KEY = "sk-platform-key-for-mistral-only"
SERVER_KEY = "self-hosted-servers-own-key"
CHAT = "/v1/chat/completions"  # (the model list, asked once to check the model, is not counted)


@pytest.fixture
def trap():
    """A self-hosted server that accepts only the platform key: a 200 would mean it was sent."""
    with OfflineServer(api_key=PLATFORM_KEY) as server:
        yield server


@pytest.fixture
def self_hosted():
    with OfflineServer(api_key=SERVER_KEY) as server:
        yield server


def test_platform_key_from_the_environment_is_not_sent_to_a_self_hosted_server(
        ip, trap, monkeypatch, capsys):
    monkeypatch.setenv("MISTRAL_API_KEY", PLATFORM_KEY)
    ip.run_line_magic("config", f"MistralMagics.server_url = {trap.url!r}")
    before = trap.request_count(CHAT)
    result = run(ip, "%%mistral\nWho gets my key?", ok=False)
    assert trap.request_count(CHAT) == before + 1  # the request arrived ...
    assert not result.success  # ... without the key the server would have accepted
    assert "401" in capsys.readouterr().out
    assert mistral_magic.session().last.backend == "self-hosted"


def test_platform_key_from_the_prompt_is_not_sent_either(ip, trap, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": PLATFORM_KEY)
    ip.run_line_magic("mistral", "key")
    ip.run_line_magic("config", f"MistralMagics.server_url = {trap.url!r}")
    result = run(ip, "%mistral models", ok=False)
    assert not result.success and "401" in str(result.error_in_exec)


def test_platform_key_from_a_dotenv_file_is_not_sent_either(ip, trap, tmp_path):
    (tmp_path / ".env").write_text(f"MISTRAL_API_KEY={PLATFORM_KEY}\n")
    ip.run_line_magic("config", f"MistralMagics.server_url = {trap.url!r}")
    result = run(ip, "%mistral models", ok=False)
    assert not result.success and "401" in str(result.error_in_exec)


def test_self_hosted_server_gets_its_own_key_from_the_setting(ip, self_hosted, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", PLATFORM_KEY)
    ip.run_line_magic("config", f"MistralMagics.server_url = {self_hosted.url!r}")
    ip.run_line_magic("config", f"MistralMagics.server_key = {SERVER_KEY!r}")
    before = self_hosted.request_count(CHAT)
    run(ip, "%%mistral\nHello, my own server.")
    assert self_hosted.request_count(CHAT) == before + 1
    assert mistral_magic.session().last.status == "ok"


def test_self_hosted_server_gets_its_own_key_from_the_environment(ip, self_hosted, monkeypatch):
    monkeypatch.setenv("MISTRAL_SERVER_KEY", SERVER_KEY)
    ip.run_line_magic("config", f"MistralMagics.server_url = {self_hosted.url!r}")
    models = ip.run_line_magic("mistral", "models")
    assert len(models) > 0


def test_server_key_is_masked_wherever_settings_are_shown(ip, capsys):
    ip.run_line_magic("config", f"MistralMagics.server_key = {SERVER_KEY!r}")
    config = ip.run_line_magic("mistral", "config")
    assert SERVER_KEY not in config.to_string()
    values = dict(zip(config["setting"], config["value"], strict=True))
    helps = dict(zip(config["setting"], config["help"], strict=True))
    assert values["server key"] == values["server_key"] == f"•••••••• ({len(SERVER_KEY)} chars)"
    assert "MistralMagics.server_key" in helps["server key"]
    ip.run_line_magic("config", "MistralMagics")
    ip.run_line_magic("config", "MistralMagics.server_key")
    printed = capsys.readouterr()
    assert SERVER_KEY not in printed.out + printed.err
    assert "server_key" in printed.out


def test_config_says_not_set_for_missing_keys(ip):
    config = ip.run_line_magic("mistral", "config")
    helps = dict(zip(config["setting"], config["help"], strict=True))
    assert helps["key"].startswith("not set") and helps["server key"].startswith("not set")
    assert "from none" not in config.to_string()


@pytest.mark.parametrize(
    "url, mistral",
    [
        ("https://api.mistral.ai", True),
        ("https://api.eu.mistral.ai", True),
        ("https://api.us.mistral.ai:443/", True),
        ("http://api.mistral.ai", False),
        ("https://api.mistral.ai:8443", False),
        ("https://api.mistral.ai.attacker.example", False),
        ("https://user@api.mistral.ai", False),
        ("https://mistral.ai", False),
        ("http://localhost:8000", False),
        ("https://api.mistral.ai:notaport", False),
    ],
)
def test_mistral_hosts(url, mistral):
    assert is_mistral_host(url) is mistral


def test_each_backend_gets_the_key_that_belongs_to_it():
    for server in SERVERS:
        spec = resolve("auto", server, None, PLATFORM_KEY)
        assert spec.kind == "mistral"
        assert key_for(spec, PLATFORM_KEY, SERVER_KEY) == PLATFORM_KEY
    own = resolve("auto", "global", "https://api.eu.mistral.ai/", PLATFORM_KEY)
    assert own.kind == "mistral" and key_for(own, PLATFORM_KEY, SERVER_KEY) == PLATFORM_KEY
    vllm = resolve("auto", "global", "http://gpu-box:8000", PLATFORM_KEY)
    assert vllm.kind == "self-hosted"
    assert key_for(vllm, PLATFORM_KEY, SERVER_KEY) == SERVER_KEY
    assert key_for(vllm, PLATFORM_KEY, None) is None


def test_a_client_with_no_key_does_not_fall_back_to_the_environment(self_hosted, monkeypatch):
    # The SDK reads MISTRAL_API_KEY by itself when given no key; ours must not let it.
    monkeypatch.setenv("MISTRAL_API_KEY", SERVER_KEY)
    backend = Backend(resolve("auto", "global", self_hosted.url, None), None, 0, 10)
    from mistralai.client.errors import SDKError

    with pytest.raises(SDKError) as info:
        backend.client.models.list()
    assert info.value.status_code == 401
