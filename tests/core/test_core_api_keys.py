"""The server's API key: the OS keyring (or memory for one run), never settings.json."""

from __future__ import annotations

import json

import keyring
import pytest
from keyring.backends import fail

from app.core import api_keys
from app.core.api_keys import (
    API_KEY_ENV,
    KeyringUnavailableError,
    key_name,
    load_api_key,
    save_api_key,
)
from app.core.settings import Settings, check_server_url, save_settings
from tests.helpers.keyrings import MemoryKeyring

URL = "http://gpu-host:8000/v1"


@pytest.fixture
def memory_keyring(monkeypatch):
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.setattr(api_keys, "_SESSION_KEYS", {})
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring(monkeypatch):
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.setattr(api_keys, "_SESSION_KEYS", {})
    yield
    keyring.set_keyring(previous)


def test_a_key_is_filed_under_the_servers_origin(memory_keyring):
    save_api_key(URL, "sk-local-123")
    assert memory_keyring.passwords == {("scout-desk", "http://gpu-host:8000"): "sk-local-123"}
    # /v1, a trailing slash or another path on the same server find the same key.
    assert load_api_key("http://GPU-host:8000/") == "sk-local-123"
    assert key_name("https://a.example/v1") != key_name("http://a.example/v1")


def test_an_empty_key_forgets_it(memory_keyring):
    save_api_key(URL, "sk-1")
    save_api_key(URL, "")
    assert load_api_key(URL) is None and memory_keyring.passwords == {}
    save_api_key(URL, "")  # forgetting twice is fine


def test_the_environment_wins(memory_keyring, monkeypatch):
    save_api_key(URL, "from-keyring")
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert load_api_key(URL) == "from-env"


def test_without_a_keyring_the_key_lives_in_memory_only(no_keyring, tmp_path):
    assert load_api_key(URL) is None  # no keyring is no error when reading
    with pytest.raises(KeyringUnavailableError, match=API_KEY_ENV):
        save_api_key(URL, "sk-session")
    assert load_api_key(URL) == "sk-session"  # for this process
    settings_file = tmp_path / "settings.json"
    save_settings(settings_file, Settings(backend="server", server_url=URL))
    assert "sk-session" not in settings_file.read_text()
    assert set(json.loads(settings_file.read_text())) >= {"backend", "server_url", "server_model"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://host/v1", "http:// or https://"),
        ("http:///v1", "no host"),
        ("http://user:secret@host/v1", "user name or password"),
        ("http://host:99999/v1", "port"),
        (42, "text"),
    ],
)
def test_a_server_url_that_is_not_usable_is_refused(url, reason):
    with pytest.raises(ValueError, match=reason):
        check_server_url(url)


def test_a_server_url_is_kept_without_its_trailing_slash():
    assert check_server_url(" https://gpu.example:8443/v1/ ") == "https://gpu.example:8443/v1"
    assert check_server_url("") == ""
