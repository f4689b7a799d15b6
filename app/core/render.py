"""Render untrusted model output as HTML a QTextDocument can show safely: no images, no scripts."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_SAFE_SCHEMES = ("http://", "https://")
# A fence's language is a short name; anything else is not worth a lexer lookup.
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")
# Some lexers are slow on huge inputs; past this a code block is shown plainly.
_MAX_HIGHLIGHT_CHARS = 100_000
_LINK_STACK = "scout_desk_links"


def render_markdown(text: str, *, code_style: str = "default") -> str:
    """Render model output (CommonMark plus tables and strikethrough) as safe HTML.

    Raw HTML in the input shows as text; images become their alt text; links survive only when
    they point to http or https; fenced code in a known language is highlighted with inline
    styles (QTextDocument ignores stylesheets classes would need).

    Args:
        text: untrusted markdown from the model (or anyone).
        code_style: a Pygments style name for code blocks (an unknown name falls back).

    Returns:
        An HTML fragment.
    """
    md = _markdown()
    env: dict[str, Any] = {"code_style": code_style, _LINK_STACK: []}
    return md.renderer.render(md.parse(text, env), md.options, env)


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("link_close", _render_link_close)
    md.add_render_rule("fence", _render_fence)
    return md


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Never load anything: the alt text stands in for the picture.
    return html.escape(self.renderInlineAsText(tokens[idx].children or [], options, env))


def _render_link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    href = str(tokens[idx].attrGet("href") or "")
    safe = href.lower().startswith(_SAFE_SCHEMES)
    # CommonMark links cannot nest, but a stack keeps open and close paired regardless.
    env[_LINK_STACK].append(safe)
    return self.renderToken(tokens, idx, options, env) if safe else ""


def _render_link_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    stack = env[_LINK_STACK]
    safe = stack.pop() if stack else False
    return self.renderToken(tokens, idx, options, env) if safe else ""


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = token.content
    if _LANGUAGE.fullmatch(language) and len(code) <= _MAX_HIGHLIGHT_CHARS:
        try:
            lexer = get_lexer_by_name(language)
        except ClassNotFound:
            pass
        else:
            return highlight(code, lexer, _formatter(str(env.get("code_style", "default"))))
    return f"<pre><code>{html.escape(code)}</code></pre>\n"


@functools.cache
def _formatter(style: str) -> HtmlFormatter:
    try:
        return HtmlFormatter(noclasses=True, style=style)
    except ClassNotFound:
        return HtmlFormatter(noclasses=True)
