"""Tests that talk HTTP to 127.0.0.1: no proxy in between, no user key from the environment."""

from __future__ import annotations

import pytest

_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def direct_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reach 127.0.0.1 directly, whatever proxies the machine running the tests sets."""
    for name in _PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
