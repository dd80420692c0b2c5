"""`minitx serve`'s page in a real browser: headless Chromium, driven by Playwright, against uvicorn on 127.0.0.1.

Type a prompt and the heatmap and the distribution change; switch a head off and the probabilities move;
translate a built-in sentence and the alignment is drawn with its gold links; markup typed in is shown as
text; a sample streams in; and no page logs a console error. Without Chromium or Playwright the tests
skip locally and fail in CI (helpers.headless_chromium).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from helpers import headless_chromium  # noqa: E402
from test_serve import pair_run, story_run  # noqa: E402, F401 - the same two runs as the app's tests

pytestmark = pytest.mark.slow

_SPEC = importlib.util.spec_from_file_location("bench_serve", Path(__file__).parents[1] / "bench" / "bench_serve.py")
bench_serve = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_serve)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def url(story_run, pair_run):  # noqa: F811 - the fixtures imported above
    with bench_serve.serving([story_run, pair_run], threads=1) as (base, token):
        yield f"{base}/?token={token}"


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url)
    settle(page)
    page.refused_on_purpose = False
    yield page
    if page.refused_on_purpose:  # the browser logs the 400 it was meant to get
        problems = [p for p in problems if "status of 400" not in p]
    assert problems == []  # no console errors, no uncaught exceptions, no CSP violations
    page.close()


def settle(page, timeout: float = 60.0) -> None:
    """Wait until every change so far has its views drawn (polled: the page's CSP forbids wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate("() => window.minitx.updates >= 1 && !window.minitx.busy"):
        assert time.monotonic() < deadline, "the page never finished updating"
        time.sleep(0.02)


def gpt(page):
    return page.locator('section[data-run="0"]')


def next_tokens(page) -> list[str]:
    return gpt(page).locator("table.next tr").all_inner_texts()


def test_typing_a_prompt_changes_the_heatmap_and_the_distribution(page) -> None:
    assert page.url.endswith("/")  # the token left the address bar (and the history)
    heatmap = gpt(page).locator("canvas.large")
    before = (heatmap.evaluate("c => c.toDataURL()"), next_tokens(page), gpt(page).locator(".token").count())
    page.fill("#text", "The cats that the dog sees run to the tree. The cats")
    settle(page)
    after = (heatmap.evaluate("c => c.toDataURL()"), next_tokens(page), gpt(page).locator(".token").count())
    assert after[0] != before[0] and after[1] != before[1] and after[2] != before[2]
    assert gpt(page).locator(".head-grid figure").count() == 4  # 2 layers × 2 heads
    assert gpt(page).locator("table.lens tr").count() == 1 + 3  # a header, then embed and two blocks
    status = page.locator("#status").inner_text()
    assert status.startswith("views updated in")


def test_switching_a_head_off_moves_the_probabilities(page) -> None:
    intact = next_tokens(page)
    toggle = gpt(page).locator('input[data-map="blocks.0.attn"][data-head="1"]')
    toggle.check()
    settle(page)
    table = gpt(page).locator("table.next")
    assert "with blocks.0.attn head 1 off" in table.locator("caption").inner_text()
    rows = table.locator("tr").all_inner_texts()
    assert rows != intact and "intact" in rows[0] and "change" in rows[0]
    changes = [float(c) for c in table.locator("td.change").evaluate_all("cells => cells.map(c => c.dataset.change)")]
    assert len(changes) == len(rows) - 1 and any(abs(c) > 1e-5 for c in changes)
    toggle.uncheck()
    settle(page)
    assert next_tokens(page) == intact


def test_translating_a_builtin_sentence_draws_the_alignment_with_gold_links(page) -> None:
    pair = page.locator('section[data-run="1"]')
    pair.locator("button.example").first.click()
    settle(page)
    assert "best-aligned head: decoder.blocks.0.cross_attn head" in pair.locator(".best").inner_text()
    assert "El perro grande ve la pelota roja." in pair.locator(".translation").inner_text()
    assert pair.locator(".head-grid.cross figure").count() == 2  # 1 map × 2 heads, each with its AER
    assert "AER" in pair.locator(".head-grid.cross figure").first.inner_text()
    assert pair.locator(".head-grid.self figure").count() == 2  # the decoder's self-attention
    assert pair.locator("table.lens:not(.written) tr").count() == 1 + 2  # a header, then embed and one block
    orange = pair.locator("canvas.large").evaluate("""c => {
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] < 120 && data[i + 2] < 60) n++;
        return n;
    }""")
    assert orange > 0  # the gold links are outlined


def test_switching_a_cross_attention_head_off_shows_the_intact_translation_beside(page) -> None:
    pair = page.locator('section[data-run="1"]')
    pair.locator("button.example").first.click()
    settle(page)
    intact = pair.locator("table.written").inner_text()
    for head in ("0", "1"):
        pair.locator(f'input[data-map="decoder.blocks.0.cross_attn"][data-head="{head}"]').check()
    settle(page)
    assert "with decoder.blocks.0.cross_attn head 0, decoder.blocks.0.cross_attn head 1 off" in \
        pair.locator(".translation").inner_text()
    assert pair.locator(".intact-translation").count() == 1
    written = pair.locator("table.written").inner_text()
    assert "p, intact" in written and written != intact
    assert pair.locator(".head-grid.cross figure.off").count() == 2


def test_markup_typed_in_is_shown_as_text(page) -> None:
    page.refused_on_purpose = True  # the encoder-decoder's character tokenizer knows no '<': it says so
    text = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    page.fill("#text", text)
    settle(page)
    assert "character '<' (U+003C) is not in this char tokenizer's vocabulary" in page.locator("#error").inner_text()
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("#runs img, #runs b:text('bold')").count() == 0
    shown = "".join(gpt(page).locator(".token").all_inner_texts()[1:])
    assert shown == text.replace(" ", "·")


def test_a_sample_streams_into_the_page(page) -> None:
    page.fill("#max-new", "12")
    page.click("#sample")
    written = gpt(page).locator("pre.sample .written")
    deadline = time.monotonic() + 30
    while page.locator("#sample").is_disabled() or not written.count():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert written.inner_text() != ""
    assert gpt(page).locator("pre.sample .prompt").inner_text() == page.input_value("#text")


def test_a_text_past_the_limit_shows_the_message(page) -> None:
    page.refused_on_purpose = True
    page.evaluate("() => { const t = document.getElementById('text'); t.removeAttribute('maxlength'); }")
    page.fill("#text", "a" * 2001)
    settle(page)
    error = page.locator("#error")
    assert error.is_visible() and "the explorer reads at most 2000" in error.inner_text()
