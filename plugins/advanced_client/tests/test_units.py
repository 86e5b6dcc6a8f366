"""The plugin's rules on their own: sanitising, BM25, the budget, the history kept, smart
replies, the command grammar, WAV reading, exports and the store."""

from __future__ import annotations

import io
import math
import wave
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from advanced_client import smart, voice
from advanced_client.chat import build_messages, export_markdown, extract_text, title_from
from advanced_client.render import plain_text, render_markdown
from advanced_client.retrieval import (
    BM25,
    Doc,
    assemble,
    chunk_text,
    cut_to_tokens,
    estimate_tokens,
    terms,
)
from advanced_client.store import Store


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](  javascript:alert(1))",
    "[a](data:text/html;base64,PHNjcmlwdD4=)",
    "[a](vbscript:msgbox)",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=https://example.org></iframe>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "```html\n<script>alert(1)</script>\n```",
    "<details open ontoggle=alert(1)>",
    "[x](https://example.org \"title\" onmouseover=alert(1))",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_markdown_output_is_inert(attack: str) -> None:
    html = render_markdown(f"text {attack} more")
    for tag, attrs in tags_of(html):
        assert tag not in ("script", "img", "svg", "iframe", "style", "details"), html
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", html
            if name in ("href", "src"):
                assert (value or "").startswith(("https://", "http://", "mailto:")), html


def test_markdown_keeps_what_people_write() -> None:
    html = render_markdown("# T\n\n**b** _i_ ~~s~~ `c`\n\n- one\n- two\n\n| a | b |\n|---|---|\n"
                           "| 1 | 2 |\n\n> quote\n\n[site](https://example.org)\n\n```python\n"
                           "def f():\n    return 1\n```")
    names = [t for t, _ in tags_of(html)]
    for wanted in ("h1", "strong", "em", "s", "code", "ul", "li", "table", "td", "blockquote",
                   "a", "pre", "span"):
        assert wanted in names, wanted
    link = next(a for t, a in tags_of(html) if t == "a")
    assert link["href"] == "https://example.org" and link["target"] == "_blank"
    assert "noopener" in (link["rel"] or "")
    assert '<span class="k">def</span>' in html  # highlighted by Pygments, classes only


def test_plain_text_for_reading_aloud() -> None:
    said = plain_text("# Title\n**Bold** and [a link](https://x.org)\n```py\nx = 1\n```\n- item")
    assert said == "Title Bold and a link (code block) item"


def test_terms_stem_and_drop_stopwords() -> None:
    assert terms("The meetings were scheduled; a meeting is on the schedule") == [
        "meet", "schedul", "meet", "schedul"]
    assert terms("planned running") == ["plan", "run"]


def test_bm25_scores_follow_the_formula() -> None:
    docs = [Doc("d", "1", "a", "apple banana"), Doc("d", "2", "b", "apple apple cherry"),
            Doc("d", "3", "c", "durian")]
    index = BM25(docs)
    n, df = 3, 2
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    avg = (2 + 3 + 1) / 3
    k1, b = 1.5, 0.75
    expected = idf * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avg))
    assert index.score(["appl"], 1) == pytest.approx(expected)
    hits = index.search("apples")
    assert [h.doc.source_id for h in hits] == ["2", "1"]
    assert index.search("durian")[0].doc.source_id == "3"
    assert index.search("nothing matches") == [] and index.search("the") == []


def test_chunks_overlap_and_cover_everything() -> None:
    text = " ".join(f"w{i}" for i in range(300))
    chunks = chunk_text(text, words=100, overlap=20)
    assert chunks[0].split()[-20:] == chunks[1].split()[:20]
    assert {w for c in chunks for w in c.split()} == set(text.split())


def test_budget_attachments_first_then_hits_that_fit() -> None:
    big = Doc("document", "big", "big", " ".join(["word"] * 1000))
    small = Doc("document", "s", "s", "tiny text about budgets")
    other = Doc("chat", "c", "c", "another budget note " * 3)
    index = BM25([small, other])
    pieces = assemble([big], index.search("budget"), 300)
    assert pieces[0].source_id == "big" and pieces[0].truncated
    assert sum(p.tokens for p in pieces) <= 300
    pieces = assemble([small], index.search("budget"), 300)
    assert [p.source_id for p in pieces] == ["s", "c"]  # the attached one is not repeated
    assert assemble([], index.search("budget"), 0) == []
    text, cut = cut_to_tokens("one two three four five six", 3)
    assert cut and estimate_tokens(text) <= 3 and text.startswith("one")


def test_history_keeps_the_newest_within_budget() -> None:
    history = [{"role": r, "content": f"message {i} " + "x " * 50, "status": "done"}
               for i, r in enumerate(["user", "assistant"] * 5)]
    history.append({"role": "assistant", "content": "", "status": "error"})
    messages, dropped = build_messages("Be brief.", history, [], 200)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    kept = messages[1:]
    assert kept[-1]["content"].startswith("message 9") and dropped == 10 - len(kept)
    assert sum(estimate_tokens(m["content"]) for m in kept) <= 200
    # The question itself always goes, even when alone it is over the budget.
    messages, _ = build_messages("", [{"role": "user", "content": "y " * 500}], [], 10)
    assert len(messages) == 1


def test_smart_reply_rules_and_model_answers() -> None:
    assert smart.rule_replies("Thank you so much!")[0] == "You're welcome!"
    assert smart.rule_replies("Can we meet tomorrow?")[0] == "That time works for me."
    assert smart.rule_replies("Is it done?") == ["Yes.", "No, not really.",
                                                "Let me check and get back to you."]
    assert len(smart.rule_replies("The build is green.")) == 3
    assert smart.parse_ai_replies('1. "Sure!"\n2) On my way\n- sure!\n\n* Later') == [
        "Sure!", "On my way", "Later"]
    labels = smart.Suggestions(["a"], "ai", model="m/x").to_dict()
    assert labels["label"] == "Smart reply · AI (m/x)"


def test_command_grammar_whole_phrases_only() -> None:
    assert voice.command_of("new conversation") == "new_conversation"
    assert voice.command_of("read last") == "read_last"  # the optional tail
    assert voice.command_of("Open  Notes") == "open_notes"
    assert voice.command_of("open") is None and voice.command_of("") is None
    assert voice.command_of("new conversation please") is None
    assert "public <command>" in voice.grammar() and "[conversation]" in voice.grammar()


def _wav(samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 3:
            ints = samples.astype("<i4")
            raw = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
        else:
            raw = samples.astype("<i2").tobytes()
        w.writeframes(raw)
    return out.getvalue()


def test_read_wav_formats_and_limits() -> None:
    tone = (np.sin(np.arange(4800) / 5) * 10_000).round()
    audio = voice.read_wav(_wav(tone, 48_000), 10)
    assert audio.rate == 48_000 and audio.seconds == pytest.approx(0.1)
    stereo = voice.read_wav(_wav(np.repeat(tone, 2), 48_000, channels=2), 10)
    assert np.allclose(stereo.samples, audio.samples)
    deep = voice.read_wav(_wav(tone * 256, 48_000, width=3), 10)
    assert np.allclose(deep.samples, tone, atol=1)
    resampled = voice.resample(audio.samples, 48_000)
    assert len(resampled) == 1600
    with pytest.raises(voice.AudioProblem) as too_long:
        voice.read_wav(_wav(tone, 48_000), 0.05)
    assert too_long.value.status == 413
    with pytest.raises(voice.AudioProblem) as not_wav:
        voice.read_wav(b"OggS" + bytes(50), 10)
    assert not_wav.value.status == 422
    with pytest.raises(voice.AudioProblem):
        voice.read_wav(_wav(tone, 4000), 10)  # below 8 kHz


def test_streamed_header_sizes_are_fixed() -> None:
    data = bytearray(_wav(np.zeros(100), 16_000))
    data[4:8] = b"\xff\xff\xff\xff"
    data[40:44] = b"\xff\xff\xff\xff"
    audio = voice.read_wav(bytes(data), 10)
    assert len(audio.samples) == 100


def test_titles_exports_and_text_extraction(tmp_path: Path) -> None:
    assert title_from("  How do I\nsecond line") == "How do I"
    assert title_from("x" * 80).endswith("…") and len(title_from("x" * 80)) == 58
    chat = {"title": "T", "model": "builtin/plexi-echo", "preset": None, "system_prompt": ""}
    md = export_markdown(chat, [
        {"role": "user", "content": "Q?", "created_at": 0, "status": "done"},
        {"role": "assistant", "content": "A.", "model": "m", "created_at": 0, "status": "done",
         "context": [{"kind": "document", "title": "notes.md"}]}])
    assert md.startswith("# T\n") and "### You" in md and "### Assistant (m)" in md
    assert "Sources: [1] document: notes.md" in md
    assert extract_text("a.md", None, "héllo".encode()) == "héllo"
    with pytest.raises(ValueError, match="not a text file"):
        extract_text("a.exe", "application/octet-stream", b"MZ")


def test_store_chats_messages_presets(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    try:
        chat = store.create_chat("New chat", None, None, "", None)
        store.add_message(chat["id"], "user", "100% of the_budget")
        answer = store.add_message(chat["id"], "assistant", "", status="writing")
        store.finish_message(answer["id"], content="ok", status="done", prompt_tokens=3,
                             completion_tokens=1, usage_estimated=False)
        assert [m["role"] for m in store.messages(chat["id"])] == ["user", "assistant"]
        # LIKE wildcards in a search are literal.
        assert [c["id"] for c in store.chats("100%")] == [chat["id"]]
        assert store.chats("1_0%") == [] and store.chats("the_b")[0]["id"] == chat["id"]
        assert store.usage_totals()["completion_tokens"] == 1
        assert any(p["name"] == "General" and p["builtin"] for p in store.presets())
        store.delete_chat(chat["id"])
        assert store.chats() == []
    finally:
        store.close()
