"""The pieces behind the documents UI: meter sentences, GPU capacity, chunk notes, citation URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl

from app.core.chunk_notes import NOTES_HEADING, chunked_answer_text, split_chunk_notes
from app.core.chunking import PartialAnswer
from app.core.citations import Citation
from app.core.document_selection import default_page_images, trim_document, trimmed_detail
from app.core.documents import Document, DocumentSource, EntryStatus, ManifestEntry, Section
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    ChatTurn,
    Role,
    StopReason,
    Timings,
)
from app.inference.budget import (
    RESERVE_BYTES,
    ImageTiling,
    context_capacity,
    kv_cache_bytes,
    prefill_bytes,
)
from app.inference.context_count import ContextCounter, ContextEstimate, ContextInputs, ModelFacts
from app.inference.engine import GenerationRequest, GenerationResult
from app.inference.token_counter import EstimateCounter
from app.store.blobs import BlobStore
from app.ui.documents.chunk_progress import progress_text
from app.ui.documents.context_meter import meter_text
from app.ui.documents.map_reduce import MapReduceRun
from app.ui.tasks.pool import TaskPool
from app.ui.transcript.citation_links import cite_url, parse_cite_url


def _estimate(**changes) -> ContextEstimate:
    values = dict(
        history_tokens=0, text_tokens=900, image_tokens=100, answer_tokens=1000,
        capacity=4096, capacity_source="the model's context window", exact=True,
    )  # fmt: skip
    values.update(changes)
    return ContextEstimate(**values)


def test_the_meter_says_what_fits_and_by_how_much_it_does_not():
    assert meter_text(_estimate()) == "2,000 of 4,096 tokens"
    assert meter_text(_estimate(exact=False)) == "~2,000 of 4,096 tokens"
    over = _estimate(text_tokens=15_396, has_documents=True)
    assert over.over == 12_400
    assert meter_text(over) == ("12,400 tokens over: drop files or pages, or answer chunk by chunk")
    long_chat = _estimate(history_tokens=6_000)
    assert meter_text(long_chat).endswith("this chat is too long, start a new one (Ctrl+N)")
    assert "context unknown" in meter_text(_estimate(capacity=None))
    assert _estimate(capacity=None, text_tokens=10**9).over == 0


def test_free_gpu_memory_bounds_the_usable_context(tmp_path: Path):
    text_config = {
        "max_position_embeddings": 4096, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "hidden_size": 64, "head_dim": 16,
        "attention_chunk_size": 64, "num_local_experts": 2, "intermediate_size": 64,
    }  # fmt: skip
    counter = ContextCounter(lambda sha: tmp_path / sha)
    counter.use_model(ModelFacts("model", EstimateCounter(), ImageTiling(), text_config))
    free = RESERVE_BYTES + prefill_bytes(text_config, 400) + 2 * kv_cache_bytes(text_config, 300)
    inputs = ContextInputs((), "x" * 400, (), 64, model_dir="model", free_bytes=free)
    estimate = counter.measure(inputs)
    expected = context_capacity(text_config, free, estimate.prompt_tokens)
    assert 0 < expected < 4096
    assert estimate.capacity == expected
    assert estimate.capacity_source.startswith("the GPU's free memory")
    roomy = counter.measure(ContextInputs((), "x", (), 64, model_dir="model", free_bytes=10**12))
    assert (roomy.capacity, roomy.capacity_source) == (4096, "the model's context window")


def test_images_cost_the_processors_tile_tokens_and_only_five_count(tmp_path: Path):
    counter = ContextCounter(lambda sha: tmp_path / sha)
    image = Attachment("a.png", AttachmentKind.IMAGE, AttachmentStatus.READY, sha256="s",
                       width=336, height=336)  # fmt: skip
    one = counter.measure(ContextInputs((), "", (image,), 0))
    assert one.image_tokens == 147  # Scout: 144 tokens a tile + start, image and end marks
    seven = counter.measure(ContextInputs((), "", (image,) * 7, 0))
    assert seven.image_tokens == 5 * 147


def test_chunk_notes_are_stored_after_the_answer_and_split_back():
    notes = [
        PartialAnswer("a.pdf pp. 1–3", "One [a.pdf p. 2]."),
        PartialAnswer("b", "NOTHING RELEVANT"),
    ]
    text = chunked_answer_text("Combined.", notes, 2)
    answer, folded = split_chunk_notes(text)
    assert answer == "Combined.\n\n*Answered chunk by chunk, in 2 chunks.*"
    assert folded == "**1. a.pdf pp. 1–3**\n\nOne [a.pdf p. 2].\n\n**2. b**\n\n*nothing relevant*"
    assert NOTES_HEADING in text
    stopped = chunked_answer_text("", notes[:1], 5, stopped="Stopped after 1 of 5 chunks.")
    assert stopped.startswith("*No combined answer")
    assert "*Stopped after 1 of 5 chunks.*" in stopped
    assert split_chunk_notes("An ordinary answer --- with a rule") == (
        "An ordinary answer --- with a rule",
        "",
    )


def test_progress_says_which_chunk_is_read():
    assert progress_text(2, 14, "report.pdf pp. 25–36") == (
        "Answering chunk by chunk: chunk 3 of 14 — report.pdf pp. 25–36"
    )
    assert progress_text(14, 14, "combining the notes").endswith(
        "all 14 chunks read, combining the notes"
    )


@pytest.mark.parametrize(
    ("citation", "page", "line"),
    [
        (Citation(0, 1, "report.pdf", page=12), 12, None),
        (Citation(0, 1, "src/a b&c=d?.py", line=40), None, 40),
    ],
)
def test_citation_urls_round_trip(citation, page, line):
    url = cite_url(citation)
    assert url.scheme() == "scout-cite"
    place = parse_cite_url(QUrl(bytes(url.toEncoded().data()).decode("ascii")))
    assert (place.file, place.page, place.line) == (citation.file, page, line)


@pytest.mark.parametrize(
    "url", ["https://example.com/?file=a", "scout-cite:open", "scout-cite:open?file=a&page=-1"]
)
def test_other_or_broken_links_are_not_citations(url):
    place = parse_cite_url(QUrl(url))
    assert place is None or (place.file == "a" and place.page is None)


def test_trimming_a_folder_lists_what_was_left_out():
    document = Document(
        "proj", DocumentSource.FOLDER,
        (Section("a.py", "a"), Section("b.py", "b")),
        (ManifestEntry("a.py", EntryStatus.USED, bytes=1), ManifestEntry("b.py", EntryStatus.USED),
         ManifestEntry("x.bin", EntryStatus.SKIPPED, "a binary file")),
    )  # fmt: skip
    trimmed = trim_document(document, {"b.py"})
    assert [s.file for s in trimmed.sections] == ["b.py"]
    assert {e.path: e.reason for e in trimmed.entries if e.status is EntryStatus.SKIPPED} == {
        "a.py": "left out by you", "x.bin": "a binary file",
    }  # fmt: skip
    original = Attachment("proj", AttachmentKind.DOCUMENT, AttachmentStatus.READY,
                          detail="2 files used, 1 skipped; a note")  # fmt: skip
    assert trimmed_detail(original, trimmed) == "1 file used, 2 skipped; a note"


def test_pages_offered_as_images_start_with_the_ones_without_text():
    sections = tuple(Section("r.pdf", "" if p in (4, 9) else "t", page=p) for p in range(1, 11))
    document = Document("r.pdf", DocumentSource.PDF, sections, page_count=10)
    assert default_page_images(document) == [1, 2, 3, 4, 9]
    assert json.dumps(default_page_images(document, 1)) == "[4]"


def test_notes_too_long_for_one_step_are_combined_in_rounds(qtbot, tmp_path: Path):
    blobs = BlobStore(tmp_path / "blobs")
    text = "".join(f"Paragraph {n}: " + "words " * 60 + "\n\n" for n in range(8))
    sha = blobs.put_bytes(text.encode())
    attachment = Attachment("long.txt", AttachmentKind.TEXT, AttachmentStatus.READY, sha256=sha)
    sent: list[tuple[str, GenerationRequest]] = []
    tasks = TaskPool(1)
    run = MapReduceRun(
        "What do the paragraphs say?", [attachment], blobs.path, "", 420,
        _request,
        lambda request_id, request: sent.append((request_id, request)), "answer-1", tasks,
    )  # fmt: skip
    outcomes = []
    run.finished.connect(outcomes.append)
    run.start()
    done = GenerationResult(StopReason.EOS, Timings())
    answered = 0
    while not outcomes:
        qtbot.waitUntil(lambda n=answered: len(sent) > n or bool(outcomes), timeout=10_000)
        if outcomes:
            break
        request_id, _request_sent = sent[answered]
        answered += 1
        reply = "short combined note" if ":reduce:" in request_id else "a long note " * 40
        if ":final:" in request_id:
            reply = "The final answer."
        run.on_chunk(request_id, reply)
        run.on_finished(request_id, done)
    tasks.shutdown()

    ids = [request_id.split(":", 1)[1] for request_id, _ in sent]
    maps = [i for i in ids if i.startswith("map:")]
    reduces = [i for i in ids if i.startswith("reduce:")]
    assert len(maps) == len(run.chunks) >= 3
    assert len(reduces) >= 2 and all(i.startswith("reduce:1:") for i in reduces)
    assert ids[-1] == "final:2"
    (outcome,) = outcomes
    assert outcome.stop_reason is StopReason.EOS
    assert outcome.text.startswith("The final answer.")
    assert outcome.text.count("a long note") == 40 * len(maps)  # every map note is kept


def _request(prompt: str) -> GenerationRequest:
    return GenerationRequest((ChatTurn(Role.USER, prompt),), 64)
