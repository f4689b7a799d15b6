"""Render a chat as a Markdown file or a standalone, script-free HTML page."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from datetime import datetime

from app.core.messages import Attachment, AttachmentKind, Message, Role, SessionInfo, StopReason
from app.store.export_boxes import BOXES_CSS, boxes_html, boxes_markdown

#: Image types a browser shows from a data URI without running anything (SVG could carry script).
EMBEDDABLE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

#: Reads a blob, or returns None when it is missing (the export notes that instead of failing).
BlobReader = Callable[[str], bytes | None]

_SPEAKER = {Role.USER: "You", Role.ASSISTANT: "Scout"}

_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.meta, header { color: #6e6e73; font-size: .85rem; }
article { border-top: 1px solid #e5e5ea; padding: .8rem 0; }
article.user .text { background: #f2f2f7; border-radius: 8px; padding: .5rem .8rem; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.note { color: #a0522d; font-size: .85rem; }
img { max-width: 100%; height: auto; border-radius: 4px; }
figure { margin: .5rem 0; }
"""

# Defence in depth: even if something slipped through escaping, the page may run no script and
# load nothing from the network.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _ending(message: Message) -> str:
    """A short note on how an answer ended, or "" for a normal end."""
    if message.role is not Role.ASSISTANT or message.stop_reason in (None, StopReason.EOS):
        return "" if not message.error else message.error
    reason = {
        StopReason.LENGTH: "stopped at the length limit",
        StopReason.TIME: "stopped at the time limit",
        StopReason.CANCELLED: "stopped early",
        StopReason.ERROR: "failed",
    }[message.stop_reason]
    return f"{reason}: {message.error}" if message.error else reason


def _describe(attachment: Attachment) -> str:
    text = f"{attachment.name} ({attachment.kind.value}, {attachment.status.value})"
    return f"{text}: {attachment.detail}" if attachment.detail else text


def _data_uri(attachment: Attachment, read_blob: BlobReader) -> str | None:
    """A data URI for an image attachment that is safe to embed, else None."""
    if (
        attachment.kind is not AttachmentKind.IMAGE
        or attachment.mime not in EMBEDDABLE_IMAGES
        or attachment.sha256 is None
    ):
        return None
    data = read_blob(attachment.sha256)
    if data is None:
        return None
    return f"data:{attachment.mime};base64,{base64.b64encode(data).decode('ascii')}"


def render_markdown(
    session: SessionInfo, messages: Sequence[Message], read_blob: BlobReader
) -> str:
    """Render a chat as Markdown, images embedded as data URIs.

    Args:
        session: the chat.
        messages: its visible messages.
        read_blob: returns a blob's bytes (None when missing).

    Returns:
        The Markdown text.
    """
    out = [f"# {session.title}", "", f"Exported from Scout Desk, {_when(session.updated_at)}.", ""]
    for index, message in enumerate(messages):
        out += ["---", "", f"**{_SPEAKER[message.role]}** · {_when(message.created_at)}", ""]
        out += [message.text, ""]
        out += boxes_markdown(messages, index)
        for attachment in message.attachments:
            out.append(f"- Attachment: {_describe(attachment)}")
            uri = _data_uri(attachment, read_blob)
            if uri:
                out += ["", f"  ![{attachment.name}]({uri})", ""]
        if message.attachments:
            out.append("")
        note = _ending(message)
        if note:
            out += [f"*({note})*", ""]
    return "\n".join(out)


def render_html(session: SessionInfo, messages: Sequence[Message], read_blob: BlobReader) -> str:
    """Render a chat as one standalone HTML page in which every piece of text is escaped.

    Model output is untrusted: it is shown as text (`white-space: pre-wrap`), never as markup.

    Args:
        session: the chat.
        messages: its visible messages.
        read_blob: returns a blob's bytes (None when missing).

    Returns:
        The HTML document.
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(session.title)}</title><style>{_CSS}{BOXES_CSS}</style></head><body>",
        f"<h1>{esc(session.title)}</h1>",
        f'<p class="meta">Exported from Scout Desk, {esc(_when(session.updated_at))}.</p>',
    ]
    for index, message in enumerate(messages):
        parts.append(f'<article class="{message.role.value}">')
        parts.append(
            f"<header>{_SPEAKER[message.role]} · {esc(_when(message.created_at))}</header>"
        )
        parts.append(f'<div class="text">{esc(message.text)}</div>')
        parts += boxes_html(messages, index, lambda image: _data_uri(image, read_blob))
        for attachment in message.attachments:
            uri = _data_uri(attachment, read_blob)
            caption = esc(_describe(attachment))
            if uri:
                parts.append(
                    f'<figure><img src="{esc(uri)}" alt="{esc(attachment.name)}">'
                    f'<figcaption class="meta">{caption}</figcaption></figure>'
                )
            else:
                parts.append(f'<p class="meta">Attachment: {caption}</p>')
        note = _ending(message)
        if note:
            parts.append(f'<p class="note">({esc(note)})</p>')
        parts.append("</article>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
