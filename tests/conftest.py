"""Shared fixtures: one real offline server for the run, a fresh IPython shell per test."""

from __future__ import annotations

import pytest

from mistral_magic.offline import OfflineServer


@pytest.fixture(scope="session")
def offline_server():
    """The real offline Mistral-compatible server on loopback, shared by the session."""
    with OfflineServer() as server:
        yield server


@pytest.fixture
def sdk(offline_server):
    """The unmodified official SDK pointed at the offline server."""
    from mistralai.client import Mistral

    return Mistral(api_key=offline_server.api_key, server_url=offline_server.url)
