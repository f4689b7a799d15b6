"""Rendering untrusted model output: useful markdown in, nothing that loads or runs anything out."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.render import render_markdown

_ALLOWED_TAGS = {
    "p", "em", "strong", "code", "pre", "a", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol",
    "li", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "s", "div",
    "span",
}  # fmt: skip
_ALLOWED_ATTRS = {"href", "title", "style", "class", "start"}


class _Collector(HTMLParser):
    """Every tag and attribute in a fragment, as a browser-grade parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _tags(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = _Collector()
    collector.feed(fragment)
    collector.close()
    return collector.tags


def _assert_safe(fragment: str) -> None:
    lowered = fragment.lower()
    for needle in ("<img", "<script", "<iframe", "<style", "<object", "<svg"):
        assert needle not in lowered, fragment
    for tag, attrs in _tags(fragment):
        assert tag in _ALLOWED_TAGS, (tag, fragment)
        assert set(attrs) <= _ALLOWED_ATTRS, (attrs, fragment)
        if tag == "a":
            href = (attrs.get("href") or "").lower()
            assert href.startswith(("http://", "https://")), fragment
        style = (attrs.get("style") or "").lower()
        assert "url(" not in style and "expression" not in style, fragment


def _links(fragment: str) -> list[str]:
    return [attrs.get("href") or "" for tag, attrs in _tags(fragment) if tag == "a"]


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ('<img src="file:///etc/passwd">', "&lt;img src=&quot;file:///etc/passwd&quot;&gt;"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<iframe src="http://x"></iframe>', "&lt;iframe"),
        ("<style>body{}</style>", "&lt;style&gt;"),
        ("&lt;img src=x&gt;", "&lt;img src=x&gt;"),
        ("&#60;script&#62;", "&lt;script&gt;"),
        ("![a cat](http://example.com/cat.png)", "a cat"),
        ("![*bold* alt](https://example.com/x.png)", "bold alt"),
        ("[click](javascript:alert(1))", "[click](javascript:alert(1))"),
        ("[file](file:///etc/passwd)", "[file](file:///etc/passwd)"),
        ("[mail](mailto:a@example.com)", "mail"),
        ("[rel](/etc/passwd)", "rel"),
        ("[data](data:text/html;base64,PHNjcmlwdD4=)", "data"),
        ("<file:///etc/passwd>", "&lt;file:///etc/passwd&gt;"),
    ],
)
def test_hostile_inputs_show_as_text(source: str, shown: str) -> None:
    out = render_markdown(source)

    _assert_safe(out)
    assert shown in out
    assert _links(out) == []


@pytest.mark.parametrize(
    ("source", "href"),
    [
        ("[docs](https://example.com/a?b=1&c=2)", "https://example.com/a?b=1&c=2"),
        ("<http://example.com>", "http://example.com"),
        ('[q](https://example.com/"onmouseover="x)', "https://example.com/%22onmouseover=%22x"),
        ("[Up](HTTPS://EXAMPLE.COM)", "HTTPS://EXAMPLE.COM"),
    ],
)
def test_web_links_survive(source: str, href: str) -> None:
    out = render_markdown(source)

    _assert_safe(out)
    assert _links(out) == [href]


def test_markdown_structure_renders() -> None:
    source = (
        "# Title\n\nSome *em* and **strong** and ~~gone~~ and `code`.\n\n"
        "- one\n- two\n\n1. first\n\n> quoted\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n"
    )
    out = render_markdown(source)

    _assert_safe(out)
    for fragment in (
        "<h1>Title</h1>",
        "<em>em</em>",
        "<strong>strong</strong>",
        "<s>gone</s>",
        "<code>code</code>",
        "<li>one</li>",
        "<blockquote>",
        "<table>",
        '<td style="text-align:center">2</td>',
    ):
        assert fragment in out


def test_code_fence_is_highlighted_with_inline_styles() -> None:
    out = render_markdown('```python\ndef f():\n    return "<b>"\n```')

    _assert_safe(out)
    assert "<pre" in out and 'style="' in out
    assert "class=" not in out.replace('class="highlight"', "")  # no stylesheet needed
    assert "&lt;b&gt;" in out and "<b>" not in out


@pytest.mark.parametrize("info", ["nosuchlanguage", "", "py{onload}", "x" * 50])
def test_unknown_languages_fall_back_to_plain_pre(info: str) -> None:
    out = render_markdown(f"```{info}\n<x> & y\n```")

    _assert_safe(out)
    assert out == "<pre><code>&lt;x&gt; &amp; y\n</code></pre>\n"


def test_code_style_can_be_chosen_and_unknown_styles_fall_back() -> None:
    source = "```python\nx = 1\n```"
    assert render_markdown(source, code_style="monokai") != render_markdown(source)
    assert render_markdown(source, code_style="no-such-style") == render_markdown(source)


_FRAGMENTS = [
    "<img src=x>", "<script>", "</script>", "<iframe>", "<style>", "javascript:", "file:",
    "data:", "src=", "[", "]", "(", ")", "!", "<", ">", "&", "#", "&#60;", "&lt;", "`", "```",
    "```python\n", "\n", "*", "_", "~~", "|", "-", "http://a.b", "https://", "\"", "'", " ",
    "onerror=", "<a href='javascript:x'>", "![", "](", "\\", "<http://x>", "<file:x>",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=5), max_size=40).map("".join),
    )
)
def test_any_input_renders_to_safe_html(source: str) -> None:
    _assert_safe(render_markdown(source))
