"""A server's API key, kept in the OS keyring (never in settings.json, exports or logs)."""

from __future__ import annotations

import contextlib
import logging
import os
from urllib.parse import urlsplit

from app.core.errors import ExpectedError

log = logging.getLogger(__name__)

#: The keyring service name; each key is stored under its server's origin.
SERVICE = "scout-desk"
#: The environment variable that gives the key for one run (it wins over the keyring).
API_KEY_ENV = "SCOUT_DESK_API_KEY"
NO_KEYRING = (
    "No keyring is available on this system, so the API key is kept only until Scout Desk "
    f"closes; set {API_KEY_ENV} to give it to every run."
)
#: Keys typed while no keyring was available: in memory for this process only, never on disk.
_SESSION_KEYS: dict[str, str] = {}


class KeyringUnavailableError(ExpectedError):
    """The OS offers no keyring (a headless Linux without Secret Service, say)."""


def key_name(url: str) -> str:
    """Where a server's key is filed: its origin, so /v1 and a trailing slash do not matter."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def load_api_key(url: str) -> str | None:
    """The key for the server at `url`: SCOUT_DESK_API_KEY, else the keyring's, else None."""
    import keyring
    from keyring.errors import KeyringError

    from_env = os.environ.get(API_KEY_ENV, "").strip()
    if from_env:
        return from_env
    name = key_name(url)
    try:
        saved = keyring.get_password(SERVICE, name)
    except KeyringError as exc:  # NoKeyringError included: running without one is allowed
        log.info("no API key read from the keyring: %s", type(exc).__name__)
        saved = None
    return saved or _SESSION_KEYS.get(name)


def save_api_key(url: str, key: str) -> None:
    """Keep `key` for the server at `url` ("" forgets it).

    Raises:
        KeyringUnavailableError: the OS has no keyring, or it refused the write; the key is
            then kept in memory until the process ends (still never on disk).
    """
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    name = key_name(url)
    _SESSION_KEYS.pop(name, None)
    try:
        if key:
            keyring.set_password(SERVICE, name, key)
        else:
            with contextlib.suppress(PasswordDeleteError):  # nothing was saved
                keyring.delete_password(SERVICE, name)
    except KeyringError as exc:
        if key:
            _SESSION_KEYS[name] = key
        raise KeyringUnavailableError(NO_KEYRING) from exc
