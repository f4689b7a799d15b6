"""Turn whatever the user typed into a safe FTS5 query (every term quoted, last one a prefix)."""

from __future__ import annotations

#: Marks around each match in a snippet; the UI renders the text between them highlighted.
MATCH_START = "«"
MATCH_END = "»"
ELLIPSIS = "…"
#: Tokens of context a snippet shows around the match.
SNIPPET_TOKENS = 12
_MAX_TERMS = 16


def fts_query(text: str) -> str | None:
    """Build an FTS5 MATCH expression that finds messages containing every word typed.

    Each whitespace-separated term becomes a quoted string (embedded quotes doubled), so user
    text such as `AND`, `"`, `*`, `NEAR(` or `col:` is searched for literally and can never be
    a syntax error. The last term matches as a prefix, so results appear while typing.

    Args:
        text: the raw search box content.

    Returns:
        The MATCH expression, or None when there is nothing to search for.
    """
    # NUL ends a C string inside SQLite's FTS parser ("unterminated string"); it is never a
    # meaningful search character.
    terms = text.replace("\x00", " ").split()[:_MAX_TERMS]
    if not terms:
        return None
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    quoted[-1] += "*"
    return " ".join(quoted)
