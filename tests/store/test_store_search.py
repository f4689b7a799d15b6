"""Full-text search: matching, snippets, exclusions, and any user text without raising."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.messages import StopReason
from app.store.search import fts_query
from app.store.sessions import DB_NAME, SessionStore


def _fts_is_consistent(data_dir: Path) -> bool:
    conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None)
    try:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


@pytest.fixture
def chats(store: SessionStore) -> dict[str, str]:
    """Three chats with known text; returns title -> session id."""
    ids = {}
    for title, text in [
        ("Dogs", "The golden retriever is sitting on the café terrace."),
        ("Cats", "A black cat sleeps; the dog next door barks."),
        ("Code", 'print("AND OR NOT") -- a "quoted" * star'),
    ]:
        session = store.create_session(title)
        store.add_user_message(session.id, text)
        ids[title] = session.id
    return ids


def test_every_word_must_match_and_hits_carry_title_and_marked_snippet(
    store: SessionStore, chats: dict[str, str]
) -> None:
    (hit,) = store.search("golden terrace")
    assert hit.session_id == chats["Dogs"]
    assert hit.session_title == "Dogs"
    assert "«golden»" in hit.snippet and "«terrace»" in hit.snippet
    assert store.search("golden cat") == []


def test_the_last_word_matches_as_a_prefix_and_accents_are_folded(
    store: SessionStore, chats: dict[str, str]
) -> None:
    assert [h.session_id for h in store.search("retr")] == [chats["Dogs"]]
    assert [h.session_id for h in store.search("cafe")] == [chats["Dogs"]]
    assert {h.session_id for h in store.search("ca")} == {chats["Dogs"], chats["Cats"]}


def test_operators_and_quotes_are_searched_for_literally(
    store: SessionStore, chats: dict[str, str]
) -> None:
    assert [h.session_id for h in store.search("AND OR NOT")] == [chats["Code"]]
    assert [h.session_id for h in store.search('"quoted"')] == [chats["Code"]]
    assert store.search("dog NOT cat") == []  # NOT is a word here, not an operator


def test_trashed_and_superseded_messages_are_not_found(
    store: SessionStore, chats: dict[str, str], data_dir: Path
) -> None:
    store.trash_session(chats["Dogs"])
    assert store.search("retriever") == []
    store.restore_session(chats["Dogs"])
    assert len(store.search("retriever")) == 1

    answer = store.begin_assistant_message(chats["Cats"])
    store.checkpoint_message(answer.id, "a zebra appears")
    assert len(store.search("zebra")) == 1  # streaming text is searchable as it is saved
    store.finish_message(answer.id, "an okapi appears", StopReason.EOS)
    assert store.search("zebra") == [] and len(store.search("okapi")) == 1
    store.supersede_from(answer.id)
    assert store.search("okapi") == []

    store.trash_session(chats["Code"])
    store.empty_trash()
    assert _fts_is_consistent(data_dir)


@pytest.mark.parametrize(
    "query",
    ['"', '""', "*", "AND", "OR OR", "NOT", "NEAR(a b)", "a:b", "text:dog", "^start", "(", ")",
     "-", "+", "{a b}", "a\x00b", "\x00", "😀", "🐕 dog", "   ", "", "'; DROP TABLE messages; --",
     "日本語", "e\u0301", "\u202e", "dog*", "*dog", '"dog'],
)  # fmt: skip
def test_hostile_queries_never_raise(
    store: SessionStore, chats: dict[str, str], query: str
) -> None:
    hits = store.search(query)
    assert isinstance(hits, list)
    assert len(store.list_sessions()) == 3


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=60))
def test_any_text_is_a_safe_query(store: SessionStore, query: str) -> None:
    assert isinstance(store.search(query, limit=5), list)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(word=st.text(alphabet=st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12))
def test_a_stored_word_is_found_by_itself(store: SessionStore, word: str) -> None:
    session = store.create_session("probe")
    message = store.add_user_message(session.id, f"zzprefix {word} zzsuffix")
    assert message.id in {h.message_id for h in store.search(word, limit=500)}


def test_the_query_builder_quotes_every_term() -> None:
    assert fts_query('say "hi" AND') == '"say" """hi""" "AND"*'
    assert fts_query(" \t\n") is None
    assert fts_query("a\x00b") == '"a" "b"*'
