"""The attention page in a real browser: headless Chromium, driven by Playwright for Python.

Needs a Chromium executable (Debian's `chromium` package; $MINITX_CHROMIUM names another) and the
`playwright` package (the dev extra); Playwright's own browser download is not needed. Without
them the tests skip -- except in CI (the CI environment variable set), where a missing browser
fails, so the browser test can never be skipped there silently (.ci/run installs chromium).
"""

from __future__ import annotations

import pytest
import torch

from helpers import headless_chromium
from minitx.inspect.capture import AttentionCapture
from minitx.inspect.colours import ramp_rgb
from minitx.inspect.roles import head_roles
from minitx.inspect.views.html import Grid, save_attention_html
from minitx.text.special import DOC_TOKEN

#: Token texts full of HTML, JavaScript and Jinja metacharacters: each must appear as itself.
TRICKY = [DOC_TOKEN, "</script><img src=x onerror=alert(1)>", ' "quoted"', " 'single'", " {{ title }}",
          " {% raw %}", " &amp;", " <!--", " `${x}`", " end"]
TITLE = "<b>run</b> & {{ data }} </script>"


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as browser:
        yield browser


def patterns(n: int) -> torch.Tensor:
    """[2, 2, n, n]: layer 0 = previous token, first token; layer 1 = uniform, self."""
    previous = torch.zeros(n, n)
    previous[0, 0] = 1.0
    previous[torch.arange(1, n), torch.arange(n - 1)] = 1.0
    first = torch.zeros(n, n)
    first[:, 0] = 1.0
    uniform = torch.ones(n, n).tril()
    uniform = uniform / uniform.sum(dim=-1, keepdim=True)
    return torch.stack([torch.stack([previous, first]), torch.stack([uniform, torch.eye(n)])])


@pytest.fixture
def page(browser, tmp_path):
    capture = AttentionCapture(TRICKY, list(range(len(TRICKY))), patterns(len(TRICKY)), pos="learned")
    path = save_attention_html(capture, head_roles(capture), tmp_path / "attention.html", title=TITLE,
                               selected=(0, 0), grids=[Grid("extra <grid>", [["<i>a</i>", "b"], ["c", "d"]])])
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector("#text span")
    yield page, problems
    page.close()


def css_rgb(share: float) -> str:
    return "rgb({}, {}, {})".format(*ramp_rgb(share))


def test_the_page_loads_without_console_errors(page) -> None:
    page, problems = page
    page.hover("#text span >> nth=3")
    page.select_option("#layer", "1")
    assert problems == []
    assert page.locator("#overview figure").count() == 2 and page.locator("#roles td.head").count() == 4


def test_choosing_a_layer_or_head_redraws_the_heatmap(page) -> None:
    page, problems = page
    drawn = lambda: page.eval_on_selector("#heatmap", "canvas => canvas.toDataURL()")  # noqa: E731
    before = drawn()
    page.select_option("#head", "1")
    after_head = drawn()
    assert after_head != before
    assert page.inner_text("#heatmap-title").startswith("layer 0 head 1: first token")
    page.select_option("#layer", "1")
    assert drawn() not in (before, after_head)
    assert page.inner_text("#heatmap-title").startswith("layer 1 head 1: self")
    page.click("#roles td.head >> nth=0")  # clicking a cell of the roles grid chooses that head
    assert page.input_value("#layer") == "0" and page.input_value("#head") == "0" and drawn() == before
    assert problems == []


def test_pointing_at_a_token_shades_what_it_reads(page) -> None:
    page, problems = page
    backgrounds = lambda: page.eval_on_selector_all(  # noqa: E731
        "#text span", "spans => spans.map(s => getComputedStyle(s).backgroundColor)")
    page.hover("#text span >> nth=4")  # layer 0 head 0 reads the previous token: all of token 4's weight on 3
    shades = backgrounds()
    assert shades[3] == css_rgb(1.0) and shades[4] == css_rgb(0.0) and shades[0] == css_rgb(0.0)
    assert all(shade == "rgba(0, 0, 0, 0)" for shade in shades[5:])  # the future is not shaded
    assert page.inner_text("#query-line").startswith('4:" {{ title }}" reads 3:" \'single\'" 1.00')
    page.mouse.move(0, 0)  # pointing away: back to the pinned token, the last one
    assert backgrounds()[8] == css_rgb(1.0) and page.inner_text("#query-line").startswith('9:" end" reads 8:')
    page.click("#text span >> nth=4")  # a click pins token 4
    page.mouse.move(0, 0)
    page.select_option("#layer", "1")  # uniform head: token 4 spreads 1/5 over tokens 0..4
    shades = backgrounds()
    assert shades[:5] == [css_rgb(0.2)] * 5
    assert problems == []


def test_metacharacters_in_tokens_and_title_show_as_text(page) -> None:
    page, problems = page
    texts = page.eval_on_selector_all("#text span", "spans => spans.map(s => s.textContent)")
    assert texts == TRICKY
    assert page.locator("img").count() == 0 and page.locator("#text i, #text b").count() == 0
    assert page.title() == TITLE and page.inner_text("h1") == TITLE
    assert "extra <grid>" in page.inner_text("body") and page.locator("td", has_text="<i>a</i>").count() == 1
    assert problems == []  # no alert() ran, nothing failed to parse


# -- the logit-lens tab and the patching heatmaps (inspect-lens --html, inspect-patch --html) -----

def lens_and_patch_sections():
    """A lens tab (2 points × 3 tokens, one token full of HTML) and one patching grid, built from reports."""
    import numpy as np

    from minitx.inspect.lens import LensReport
    from minitx.inspect.patching import PatchGrid, PatchReport
    from minitx.inspect.views.html import lens_section, patch_sections

    class Tokens:  # the one tokenizer method the sections use
        def id_to_token_text(self, i: int) -> str:
            return ["<|doc|>", "<b>bold</b>", " runs"][i]

    report = LensReport(["<|doc|>", "<b>bold</b>", " runs"], [0, 1, 2], ["embed", "block 0"], [1, 2, None],
                        top_ids=torch.tensor([[[1], [0], [2]], [[1], [2], [2]]]),
                        top_probs=torch.tensor([[[0.5], [0.4], [0.3]], [[0.9], [0.8], [0.7]]]),
                        target_prob=torch.tensor([[0.5, 0.1, float("nan")], [0.9, 0.8, float("nan")]]),
                        target_rank=torch.tensor([[1, 3, 0], [1, 1, 0]]))
    grid = PatchGrid("heads", ["layer 0"], ["head 0", "head 1"], np.array([[1.0, 0.0]]), np.array([[0.9, -0.1]]),
                     np.array([[1.0, 0.1]]), np.array([[4, 4]]))
    patching = PatchReport(4, np.ones(4), -np.ones(4), [grid])
    return lens_section(report, Tokens()), patch_sections(patching)


def test_the_lens_tab_switches_views_and_the_patching_heatmap_is_shaded(browser, tmp_path) -> None:
    lens, patching = lens_and_patch_sections()
    capture = AttentionCapture(TRICKY, list(range(len(TRICKY))), patterns(len(TRICKY)), pos="learned")
    path = save_attention_html(capture, head_roles(capture), tmp_path / "lens.html", title=TITLE, selected=(0, 0),
                               lens=lens, patching=patching)
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_selector("#text span")
    assert page.is_hidden("#lens-view") and page.is_visible("#attention-view")
    page.click("#tab-lens")
    assert page.is_visible("#lens-view") and page.is_hidden("#attention-view")
    cells = page.eval_on_selector_all("#lens td", "cells => cells.map(c => [c.textContent, "
                                                  "getComputedStyle(c).backgroundColor])")
    assert cells[0] == ["<b>bold</b> 0.50", css_rgb(0.5)]  # the token shows as text, shaded by p(target)
    assert cells[5] == [" runs", css_rgb(0.0)]  # the last position has no target: unshaded
    assert page.locator("#lens b").count() == 0
    page.click("#tab-attention")
    assert page.is_visible("#attention-view")
    heat = page.eval_on_selector_all("#patch-0 td", "cells => cells.map(c => getComputedStyle(c).backgroundColor)")
    assert heat == [css_rgb(1.0), css_rgb(0.0)]
    assert page.get_attribute("#patch-0 td >> nth=0", "title").startswith("95% interval 0.90 to 1.00, 4 pairs")
    assert problems == []
    page.close()

# -- the encoder-decoder's page: the alignment view ----------------------------------------------

def alignment_capture():
    """3 source words (one token each, then the end), 3 target words; cross head 0 reads the gold links
    (a reordering), head 1 reads source word 0 from every target word."""
    import numpy as np

    from minitx.inspect.alignment import PairCapture

    gold_source = [0, 2, 1]  # target word t renders source word gold_source[t]
    right, wrong = np.zeros((4, 4)), np.zeros((4, 4))
    for t, s in enumerate(gold_source):
        right[t, s] = 1.0
    right[3, 3] = wrong[3, 3] = 1.0
    wrong[:3, 0] = 1.0
    square = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    weights = {"encoder": [np.stack([np.eye(4), np.ones((4, 4)) / 4])], "decoder": [np.stack([square, square])],
               "cross": [np.stack([right, wrong])]}
    words = ["</script><b>x</b>", "big", "dog."]
    capture = PairCapture(" ".join(words), "El perro grande.", words + [DOC_TOKEN],
                          [DOC_TOKEN, "El", " perro", " grande."], ["El", " perro", " grande.", DOC_TOKEN],
                          [0, 1, 2, -1], [0, 1, 2, -1], weights, "rope", "none")
    return capture, [(0, 0), (2, 1), (1, 2)]


@pytest.fixture
def alignment_page(browser, tmp_path):
    from minitx.inspect.alignment import alignment_report
    from minitx.inspect.views.alignment import save_alignment_html

    capture, gold = alignment_capture()
    report = alignment_report([capture], [gold])
    path = save_alignment_html(capture, report, gold, tmp_path / "alignment.html", title=TITLE)
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector("#alignment line")
    yield page, problems
    page.close()


def test_the_alignment_view_draws_the_best_heads_links_right_and_a_wrong_head_dashed(alignment_page) -> None:
    page, problems = alignment_page
    links = lambda kind: page.eval_on_selector_all(  # noqa: E731
        f"#alignment line.{kind}", "lines => lines.map(l => l.getAttribute('data-link'))")
    assert links("right") == ["0-0", "2-1", "1-2"] and links("wrong") == []  # the best head is shown first
    assert page.locator("#alignment line.gold").count() == 3
    assert page.input_value("#layer") == "0" and page.input_value("#head") == "0"
    page.click("#aer td.head >> nth=1")  # choose head 1: it reads source word 0 from everywhere
    assert links("right") == ["0-0"] and links("wrong") == ["0-1", "0-2"]
    assert page.inner_text("#alignment-help").startswith("layer 0 head 1: 1 of 3 links right")
    texts = page.eval_on_selector_all("#alignment text", "nodes => nodes.map(n => n.textContent)")
    assert texts[0] == "</script><b>x</b>" and page.locator("b").count() == 0  # a word shows as text
    assert page.title() == TITLE
    assert problems == []


def test_the_alignment_page_shows_the_non_square_cross_matrix_and_the_other_attentions(alignment_page) -> None:
    page, problems = alignment_page
    rows = lambda: page.locator("#matrix tr").count() - 1  # noqa: E731 - less the header
    columns = lambda: page.locator("#matrix tr >> nth=0").locator("th").count() - 1  # noqa: E731
    assert (rows(), columns()) == (4, 4)
    assert page.inner_text("#matrix-title").startswith("cross-attention")
    page.select_option("#kind", "decoder")
    assert page.inner_text("#matrix-title").startswith("decoder masked self-attention")
    future = page.eval_on_selector("#matrix tr >> nth=1", "row => row.cells[2].style.background")
    assert future == ""  # the future is left blank
    page.select_option("#kind", "encoder")
    first = page.eval_on_selector("#matrix tr >> nth=1", "row => getComputedStyle(row.cells[1]).backgroundColor")
    assert first == css_rgb(1.0)  # head 0 of the encoder reads itself
    assert problems == []
