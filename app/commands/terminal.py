"""Text for the terminal: user- and file-derived strings can never drive it or break a line.

A chat title or a file name is someone else's text. Printed raw, an ESC or OSC sequence can
retitle the window, recolour or clear the screen, or (on some terminals) write to the clipboard;
a newline forges an extra row of `sessions list`; a bidi override shows "exe.png" for
"\\u202egnp.exe". Everything that could do so is written as a visible escape instead.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# C0 controls (NUL, BEL, ESC, newline, tab, ...), DEL and C1 controls (0x9b is a one-byte CSI);
# the bidi embeddings, overrides and isolates of "Trojan Source" (CVE-2021-42574) and the bidi
# marks; the Unicode line and paragraph separators; and lone surrogates, which no terminal
# encoding can write. Other format characters (the joiners inside emoji and Indic or Persian
# words) are left alone: they change how text looks, never what the terminal does.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT = {"\n": r"\n", "\r": r"\r", "\t": r"\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _escape_keeping_lines(match: re.Match[str]) -> str:
    char = match.group()
    return char if char in "\n\t" else _escape(match)


def _encoding(encoding: str | None) -> str:
    return encoding or getattr(sys.stdout, "encoding", None) or "utf-8"


def printable(text: str, encoding: str | None = None, *, keep_lines: bool = False) -> str:
    """`text` made safe to print: one line, no control or bidi characters, always encodable.

    Control characters become Python-style escapes (`\\x1b`, `\\n`, `\\u202e`); backslashes
    are kept as they are, so an escape is shown, never acted on.

    Args:
        text: a title, file name or sentence that names one.
        encoding: the terminal's encoding (None: that of `sys.stdout`); characters it cannot
            write are escaped too, instead of raising UnicodeEncodeError at print time.
        keep_lines: leave newlines and tabs as they are (a streamed answer has lines of its
            own; everything else that could drive the terminal is still escaped).

    Returns:
        The text to print.
    """
    escape = _escape_keeping_lines if keep_lines else _escape
    safe = _UNSAFE.sub(escape, text)
    codec = _encoding(encoding)
    return safe.encode(codec, "backslashreplace").decode(codec)


def json_text(value: Any, encoding: str | None = None, *, indent: int | None = 2) -> str:
    """`value` as strict JSON that `encoding` can write (indented unless `indent` is None).

    JSON escapes every control character itself. Non-ASCII stays readable where the terminal
    can write it; otherwise (a lone surrogate, a non-UTF-8 terminal) it is written as \\u
    escapes, which is the same JSON.

    Args:
        value: plain data.
        encoding: the terminal's encoding (None: that of `sys.stdout`).

    Raises:
        ValueError: `value` holds NaN or an infinity, which are not JSON.
    """
    text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    try:
        text.encode(_encoding(encoding))
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, indent=indent, allow_nan=False)
    return text
