"""examples/tour.ipynb runs from top to bottom, and its pictures show in a browser with nothing fetched.

The notebook is executed in a fresh Python kernel (nbclient; any error in any cell fails), rendered to
HTML with nbconvert (its "basic" template: the cells and their outputs, no script of nbconvert's own), and
opened in headless Chromium (Playwright, through helpers.headless_chromium): no console
error, no request leaves the page, and the heatmaps are there -- one SVG per attention head, a shaded
table for the lens and for each patching grid, a bar per attributed part.

Executing it trains two tiny runs (about a minute on 2 cores), so the test is `slow`: `make test`
leaves it out, `.ci/run` (ALL=1) runs it. The notebook is kept in git with its outputs cleared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import headless_chromium

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"
#: Seconds one cell may take (the longest trains the tiny preset, corpus and tokenizer included).
CELL_TIMEOUT = 600


def test_the_tour_is_kept_with_its_outputs_cleared() -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    """The tour executed top to bottom in a fresh kernel, from a temporary working directory."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("tour")
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # a cell that raises fails here, with the cell and its traceback
    return notebook


def outputs_of(notebook, mime: str) -> list[str]:
    return [output["data"][mime] for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if "data" in output and mime in output["data"]]


@pytest.mark.slow
def test_the_tour_runs_and_every_result_draws_itself(executed) -> None:
    errors = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs
              if output["output_type"] == "error"]
    assert errors == []
    pictures = "".join(outputs_of(executed, "text/html"))
    assert pictures.count('class="minitx-head"') == 2 * 4 + 3 * 2  # the tiny GPT's heads; the pair's three kinds
    assert pictures.count('class="minitx-heat"') == 1 + 3  # the lens; the patching grids
    assert pictures.count('class="minitx-bar"') > 8 and "<script" not in pictures
    printed = "".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                      for output in cell.outputs if output["output_type"] == "stream")
    assert "validation loss" in printed and '"schema": "minitx.inspect-lens"' in printed


@pytest.mark.slow
def test_the_rendered_tour_shows_its_heatmaps_offline_without_console_errors(executed, tmp_path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="basic").from_notebook_node(executed)
    page_path = tmp_path / "tour.html"
    page_path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>tour</title></head>'
                         f"<body>{body}</body></html>", encoding="utf-8")
    problems: list[str] = []
    fetched: list[str] = []
    with headless_chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.route("http*://**", lambda route: (fetched.append(route.request.url), route.abort()))
        page.goto(page_path.as_uri())
        heads = page.locator("svg.minitx-head").count()
        drawn = page.locator("svg.minitx-head rect").count()
        tables = page.locator("table.minitx-heat").count()
        shaded = page.eval_on_selector_all(
            "table.minitx-heat td", "cells => cells.filter(c => getComputedStyle(c).backgroundColor !== "
            "'rgb(255, 255, 255)').length")
        first_head = page.locator("svg.minitx-head").first.bounding_box()
    assert problems == [] and fetched == []
    assert heads == 2 * 4 + 3 * 2 and drawn > heads and tables == 4 and shaded > 0
    assert first_head is not None and first_head["width"] > 50 and first_head["height"] > 50
