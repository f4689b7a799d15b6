"""Facts about a server URL that need no connection: its base, its host, is it local, is it safe.

Every function here keeps credentials (user:password@) out of what it returns, and none raises
for a string that is not a URL except `normalize_base_url`, whose job is to refuse one.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from app.inference.engine import ModelError


def normalize_base_url(url: str) -> str:
    """The base URL requests are built on: trimmed, no trailing slash, "/v1" for a bare host.

    Raises:
        ModelError: it is not an http:// or https:// URL with a host.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ModelError(f"{text!r} is not a usable server address.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ModelError(
            f"{display_url(text)!r} is not a server address: use http://host:port/v1 or "
            f"https://host/v1."
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))


def display_url(url: str) -> str:
    """The URL as sentences show it: any user:password@ part left out."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def host_of(url: str) -> str:
    """host[:port] of a URL (no credentials), as the status bar shows it ("model @ host")."""
    return urlsplit(url).netloc.rpartition("@")[2]


def is_loopback(url: str) -> bool:
    """True when the URL points at this machine (localhost, 127.0.0.0/8, ::1)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return False
    host = host.rstrip(".").lower()
    # RFC 6761 reserves every name under .localhost for this machine.
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str) -> str | None:
    """A warning sentence when the URL is plain http:// to another machine, else None."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    if scheme != "http" or is_loopback(url):
        return None
    return (
        f"{display_url(url.strip())} uses plain http://: prompts, images and the API key travel "
        f"unencrypted over the network, so use https:// for a server on another machine."
    )


__all__ = ["display_url", "host_of", "is_loopback", "normalize_base_url", "plain_http_warning"]
