"""Tests for the attention views: capturing α, naming head roles, the terminal/PNG/HTML renderings, the command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import torch
from rich.console import Console

from helpers import random_model
from minitx.commands.inspect import run_inspect_attention
from minitx.config import TrainConfig
from minitx.errors import UserError
from minitx.inspect.capture import DEFAULT_PROMPT, AttentionCapture, capture_attention, top_attended
from minitx.inspect.roles import HeadRole, head_roles, head_scores, most_telling_head, name_role
from minitx.inspect.views.html import rounded_weights, save_attention_html
from minitx.inspect.views.pictures import save_attention_png
from minitx.inspect.views.terminal import (
    HOW_TO_READ,
    MAX_SHOWN_TOKENS,
    attention_heatmap,
    readout_line,
    roles_table,
)
from minitx.model import GPT
from minitx.text.tokenizer import DOC_TOKEN, Tokenizer

STORY_TEXT = "<|doc|>the cat sat on the mat.\n<|doc|>a dog ran to the sun.\n" + DEFAULT_PROMPT + " <script>&'\"\n"


@pytest.fixture(scope="module")
def char_tokenizer() -> Tokenizer:
    return Tokenizer.train_char(STORY_TEXT)


@pytest.fixture(scope="module")
def model(char_tokenizer: Tokenizer) -> GPT:
    return random_model(vocab_size=char_tokenizer.vocab_size)


def console() -> Console:
    return Console(record=True, width=160, color_system=None)


def rendered(renderable) -> str:
    out = console()
    out.print(renderable)
    return out.export_text()


# --------------------------------------------------------------------------------------------
# hand-made patterns, [T, T] with rows summing to 1 over t' <= t

T = 8


def previous_token_pattern(n: int = T) -> torch.Tensor:
    weights = torch.zeros(n, n)
    weights[0, 0] = 1.0
    weights[torch.arange(1, n), torch.arange(n - 1)] = 1.0
    return weights


def first_token_pattern(n: int = T) -> torch.Tensor:
    weights = torch.zeros(n, n)
    weights[:, 0] = 1.0
    return weights


def uniform_pattern(n: int = T) -> torch.Tensor:
    weights = torch.ones(n, n).tril()
    return weights / weights.sum(dim=-1, keepdim=True)


def local_pattern(n: int = T) -> torch.Tensor:
    """Each row spread evenly over the (up to) 3 tokens before it; row 0 on itself."""
    weights = torch.zeros(n, n)
    weights[0, 0] = 1.0
    for t in range(1, n):
        window = range(max(0, t - 3), t)
        weights[t, list(window)] = 1.0 / len(window)
    return weights


def capture_of(patterns: list[list[torch.Tensor]], token_ids: list[int] | None = None) -> AttentionCapture:
    """A capture from hand-made [T, T] patterns, one list of heads per layer."""
    weights = torch.stack([torch.stack(heads) for heads in patterns])  # [L, H, T, T]
    n = weights.shape[-1]
    ids = token_ids if token_ids is not None else list(range(n))
    return AttentionCapture([f"t{i}" for i in ids], ids, weights, pos="learned")


# --------------------------------------------------------------------------------------------
# capture


def test_capture_holds_one_causal_row_stochastic_matrix_per_layer_and_head(model, char_tokenizer) -> None:
    capture = capture_attention(model, char_tokenizer, "the cat sat")
    n = len("the cat sat") + 1  # one token per character, plus <|doc|>
    assert capture.weights.shape == (2, 2, n, n) and (capture.n_layers, capture.n_heads, capture.n_tokens) == (2, 2, n)
    assert capture.weights.dtype == torch.float32 and capture.weights.device.type == "cpu"
    torch.testing.assert_close(capture.weights.sum(dim=-1), torch.ones(2, 2, n))
    assert torch.all(capture.weights.triu(1) == 0)  # the future gets exactly nothing
    assert capture.pos == "learned"


def test_capture_equals_softmax_q_k_recomputed_from_each_layers_own_input(model, char_tokenizer) -> None:
    """α = softmax(q·kᵀ/√d + causal mask), recomputed by hand from what each attention layer received
    (learned positions: nothing is added inside attention), must equal what the capture reports."""
    inputs: list[torch.Tensor] = []
    hooks = [block.attn.register_forward_pre_hook(lambda _, args: inputs.append(args[0].detach()))
             for block in model.transformer.h]
    try:
        capture = capture_attention(model, char_tokenizer, "a dog ran")
    finally:
        for hook in hooks:
            hook.remove()
    n_heads, dim = model.config.n_heads, model.config.dim
    head_dim = dim // n_heads
    for layer, x in enumerate(inputs):  # x: [1, T, C], the output of ln_1
        q, k, _ = model.transformer.h[layer].attn.c_attn(x).detach().split(dim, dim=-1)
        q = q.view(1, -1, n_heads, head_dim).transpose(1, 2)  # [1, H, T, hd]
        k = k.view(1, -1, n_heads, head_dim).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / head_dim**0.5  # [1, H, T, T]
        n = scores.shape[-1]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        torch.testing.assert_close(capture.weights[layer], scores.softmax(dim=-1)[0], atol=1e-6, rtol=1e-5)
    assert len(inputs) == capture.n_layers


def test_doc_is_put_in_front_once_and_tokens_line_up_with_ids(model, char_tokenizer) -> None:
    doc = char_tokenizer.token_id(DOC_TOKEN)
    capture = capture_attention(model, char_tokenizer, "the mat")
    assert capture.token_ids[0] == doc and capture.tokens[0] == DOC_TOKEN
    assert capture.tokens == [char_tokenizer.id_to_token_text(i) for i in capture.token_ids]
    assert char_tokenizer.decode(capture.token_ids) == DOC_TOKEN + "the mat"
    already = capture_attention(model, char_tokenizer, DOC_TOKEN + "the mat")
    assert already.token_ids == capture.token_ids  # not a second <|doc|>


def test_without_a_doc_token_the_text_is_read_as_is_and_empty_text_is_a_user_error() -> None:
    tokenizer = Tokenizer.train_char("abc ", special_tokens=())
    model = random_model(vocab_size=tokenizer.vocab_size)
    capture = capture_attention(model, tokenizer, "cab")
    assert capture.tokens == ["c", "a", "b"]
    with pytest.raises(UserError, match="empty after tokenizing"):
        capture_attention(model, tokenizer, "")


def test_long_text_keeps_its_last_block_size_or_max_tokens_tokens(model, char_tokenizer) -> None:
    text = "the cat sat on the mat. a dog ran to the sun."
    ids = [char_tokenizer.token_id(DOC_TOKEN), *char_tokenizer.encode(text)]
    assert capture_attention(model, char_tokenizer, text).token_ids == ids[-16:]  # block_size 16
    assert capture_attention(model, char_tokenizer, text, max_tokens=5).token_ids == ids[-5:]
    with pytest.raises(UserError, match="--max-tokens must be at least 1"):
        capture_attention(model, char_tokenizer, text, max_tokens=0)


def test_capture_puts_a_training_model_back_in_training_mode(char_tokenizer) -> None:
    model = random_model(vocab_size=char_tokenizer.vocab_size).train()
    capture_attention(model, char_tokenizer, "the cat")
    assert model.training
    capture_attention(model.eval(), char_tokenizer, "the cat")
    assert not model.training


# --------------------------------------------------------------------------------------------
# scores and roles


def test_an_exact_previous_token_diagonal_is_a_previous_token_head_with_score_one() -> None:
    scores = head_scores(previous_token_pattern())
    assert scores["previous token"] == 1.0 and scores["self"] == 0.0 and scores["broad"] == 0.0
    assert scores["local"] == 1.0  # it is local too, but the positional role is the more specific name
    assert name_role(scores) == ("previous token", 1.0)


def test_all_mass_on_position_zero_is_a_first_token_head() -> None:
    scores = head_scores(first_token_pattern())
    assert scores["first token"] == 1.0 and scores["previous token"] == pytest.approx(1 / (T - 1))
    assert name_role(scores) == ("first token", 1.0)


def test_uniform_rows_are_broad_with_entropy_score_one() -> None:
    scores = head_scores(uniform_pattern())
    assert scores["broad"] == pytest.approx(1.0, abs=1e-6)  # float32 weights
    assert name_role(scores)[0] == "broad"


def test_the_identity_is_a_self_head_and_row_zero_does_not_count() -> None:
    assert name_role(head_scores(torch.eye(T))) == ("self", 1.0)
    # previous-token weights everywhere but row 0 (which always sees only itself): still exactly 1
    assert head_scores(previous_token_pattern())["self"] == 0.0


def test_mass_spread_over_the_three_tokens_before_is_local_not_previous_token() -> None:
    scores = head_scores(local_pattern())
    assert scores["local"] == pytest.approx(1.0) and scores["previous token"] < 0.5
    assert name_role(scores) == ("local", pytest.approx(1.0))


def test_reading_earlier_copies_of_the_same_token_is_a_same_token_head() -> None:
    ids = [0, 5, 6, 7, 5, 6, 8, 7]  # positions 4, 5, 7 repeat the ids of 1, 2, 3
    weights = uniform_pattern()
    for query, copy in [(4, 1), (5, 2), (7, 3)]:
        weights[query] = 0.0
        weights[query, copy] = 1.0
    scores = head_scores(weights, ids)
    assert scores["same token"] == 1.0
    assert name_role(scores) == ("same token", 1.0)
    assert "same token" not in head_scores(weights)  # no ids, no score
    assert "same token" not in head_scores(weights, [0, 1, 2, 3, 4, 5, 6, 1])  # one repeat is too few to judge


def test_one_moving_token_per_row_is_focused() -> None:
    weights = torch.zeros(T, T)  # every row reads the last "full stop": position 0 up to 3, then 3
    weights[:4, 0] = 1.0
    weights[4:, 0] = 0.1
    weights[4:, 3] = 0.9
    assert name_role(head_scores(weights)) == ("focused", pytest.approx((3 * 1.0 + 4 * 0.9) / 7))


def test_a_head_split_three_ways_is_mixed() -> None:
    weights = torch.zeros(T, T)
    weights[0, 0] = 1.0
    weights[1, :2] = 0.5
    for t in range(2, T):
        weights[t, [0, t - 1, t]] = 1 / 3
    role, score = name_role(head_scores(weights))
    assert role == "mixed" and score == pytest.approx(max(head_scores(weights).values()))


def test_head_roles_names_every_head_in_layer_then_head_order() -> None:
    capture = capture_of([[previous_token_pattern(), first_token_pattern()], [uniform_pattern(), torch.eye(T)]])
    roles = head_roles(capture)
    assert [(r.layer, r.head, r.role) for r in roles] == [
        (0, 0, "previous token"), (0, 1, "first token"), (1, 0, "broad"), (1, 1, "self"),
    ]
    assert roles[0].score == 1.0 and roles[0].scores["previous token"] == 1.0


def test_the_most_telling_head_is_the_strongest_named_one_and_broad_only_as_a_last_resort() -> None:
    roles = [HeadRole(0, 0, "broad", 0.99, {"broad": 0.99}), HeadRole(0, 1, "local", 0.72, {"broad": 0.5}),
             HeadRole(1, 0, "first token", 0.8, {"broad": 0.2}), HeadRole(1, 1, "mixed", 0.4, {"broad": 0.1})]
    assert (most_telling_head(roles).layer, most_telling_head(roles).head) == (1, 0)
    unnamed = [roles[0], roles[3], HeadRole(2, 0, "mixed", 0.4, {"broad": 0.3})]
    assert (most_telling_head(unnamed).layer, most_telling_head(unnamed).head) == (1, 1)  # most concentrated


def test_a_real_head_with_zero_queries_and_keys_attends_uniformly_and_is_broad(char_tokenizer) -> None:
    model = random_model(vocab_size=char_tokenizer.vocab_size)
    dim = model.config.dim
    with torch.no_grad():  # q = k = 0 in layer 1: every score is 0, so softmax is uniform over the past
        model.transformer.h[1].attn.c_attn.weight[: 2 * dim] = 0.0
        model.transformer.h[1].attn.c_attn.bias[: 2 * dim] = 0.0
    capture = capture_attention(model, char_tokenizer, "the cat sat on")
    torch.testing.assert_close(capture.weights[1, 0], uniform_pattern(capture.n_tokens))
    layer_one = [r for r in head_roles(capture) if r.layer == 1]
    assert [r.role for r in layer_one] == ["broad", "broad"] and layer_one[0].score == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# renderings


def test_top_attended_lists_the_strongest_visible_keys_first() -> None:
    weights = torch.zeros(T, T)
    weights[:, 0] = 1.0
    weights[5, :6] = torch.tensor([0.2, 0.0, 0.7, 0.0, 0.0, 0.1])
    capture = capture_of([[weights]])
    top = top_attended(capture, 0, 0, 5)
    assert [(position, text) for position, text, _ in top] == [(2, "t2"), (0, "t0"), (5, "t5")]
    assert [w for _, _, w in top] == pytest.approx([0.7, 0.2, 0.1])
    assert len(top_attended(capture, 0, 0, 0)) == 1  # the first token sees only itself
    assert top_attended(capture, 0, 0, -3) == top  # counted from the end, as in Python
    assert readout_line(capture, 0, 0, 5) == '5:"t5" ← 2:"t2" 0.70, 0:"t0" 0.20, 5:"t5" 0.10'
    with pytest.raises(ValueError, match="outside"):
        top_attended(capture, 0, 0, T)


def test_roles_table_shows_a_cell_per_layer_and_head_with_role_and_score() -> None:
    capture = capture_of([[previous_token_pattern(), first_token_pattern()], [uniform_pattern(), torch.eye(T)]])
    text = rendered(roles_table(head_roles(capture), 2, 2))
    assert "head 0" in text and "head 1" in text
    assert "previous token 1.00" in text and "first token 1.00" in text and "self 1.00" in text and "broad" in text


def test_heatmap_names_layer_head_role_and_shows_the_tokens(model, char_tokenizer) -> None:
    capture = capture_attention(model, char_tokenizer, "the cat")
    role = head_roles(capture)[1 * capture.n_heads + 0].role
    text = rendered(attention_heatmap(capture, 1, 0))
    assert f"layer 1 head 0: {role}" in text
    assert "0=<|doc|>  1=t  2=h" in text and "4=␣  5=c" in text  # the columns, whitespace made visible
    with pytest.raises(UserError, match=r"--head 7 does not exist: each layer has heads 0\.\.1"):
        attention_heatmap(capture, 0, 7)


def test_heatmap_of_a_long_input_shows_only_the_last_tokens_and_says_so() -> None:
    n = MAX_SHOWN_TOKENS + 10
    capture = capture_of([[previous_token_pattern(n)]])
    text = rendered(attention_heatmap(capture, 0, 0))
    assert f"last {MAX_SHOWN_TOKENS} of {n} tokens" in text
    assert "t49" in text and "t9 " not in text


def test_tokens_that_look_like_rich_markup_are_shown_as_they_are() -> None:
    capture = AttentionCapture(["[/", "b]", "[red]"], [0, 1, 2], uniform_pattern(3)[None, None], pos="none")
    text = rendered(attention_heatmap(capture, 0, 0))  # "[/  1=b]" in the column list must not be read as a tag
    assert "0=[/" in text and "1=b]" in text and "2=[red]" in text


def test_png_holds_every_head_and_starts_with_the_png_signature(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    capture = capture_of([[previous_token_pattern(), first_token_pattern()], [uniform_pattern(), torch.eye(T)]])
    path = save_attention_png(capture, tmp_path / "sub" / "attention.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and path.stat().st_size > 1000
    with pytest.raises(UserError, match=r"--layer 2 does not exist: this model has layers 0\.\.1"):
        save_attention_png(capture, tmp_path / "x.png", layer=2)


# --------------------------------------------------------------------------------------------
# the HTML page


def page_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="attention-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


@pytest.fixture
def tricky_capture(model, char_tokenizer) -> AttentionCapture:
    return capture_attention(model, char_tokenizer, "the <script>&'\"\ncat")


def test_html_page_is_written_atomically_and_names_no_network_address(tricky_capture, tmp_path, monkeypatch) -> None:
    from minitx.inspect.views import html

    written = []
    real_write = html.atomic_write_text
    monkeypatch.setattr(html, "atomic_write_text", lambda path, text: written.append(path) or real_write(path, text))
    path = save_attention_html(tricky_capture, head_roles(tricky_capture), tmp_path / "a.html", title="demo")
    assert written == [tmp_path / "a.html"] and sorted(p.name for p in tmp_path.iterdir()) == ["a.html"]
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert "<link" not in page and " src=" not in page  # nothing loaded from elsewhere


def test_html_embeds_every_weight_as_layers_heads_tokens_tokens(tricky_capture, tmp_path) -> None:
    roles = head_roles(tricky_capture)
    page = save_attention_html(tricky_capture, roles, tmp_path / "a.html", title="demo").read_text(encoding="utf-8")
    data = page_data(page)
    weights = data["weights"]
    n = tricky_capture.n_tokens
    assert len(weights) == 2 and all(len(layer) == 2 for layer in weights)
    assert all(len(head) == n and all(len(row) == n for row in head) for layer in weights for head in layer)
    torch.testing.assert_close(torch.tensor(weights, dtype=torch.float32), tricky_capture.weights, atol=5e-4, rtol=0)
    assert data["tokens"] == tricky_capture.tokens
    assert [[cell["role"] for cell in layer] for layer in data["roles"]] == [[r.role for r in roles[:2]],
                                                                             [r.role for r in roles[2:]]]


def test_a_script_tag_in_a_token_or_the_title_cannot_break_out_of_the_page(tmp_path) -> None:
    tokens = [DOC_TOKEN, "</script><script>alert(1)</script>", "<!--", "&amp;", "'\"\n", "__DATA__"]
    capture = AttentionCapture(tokens, list(range(6)), uniform_pattern(6)[None, None], pos="rope")
    title = "<b>run</b> & co __DATA__"
    text = save_attention_html(capture, head_roles(capture), tmp_path / "a.html", title=title).read_text("utf-8")
    assert text.count("<script") == 2 and text.count("</script>") == 2  # the data block and the program only
    assert "alert(1)" in text and "<!--" not in text and "&amp;amp;" not in text
    assert "&lt;b&gt;run&lt;/b&gt; &amp; co __DATA__</title>" in text and "<b>run" not in text
    assert page_data(text)["tokens"] == tokens  # the exact text comes back out of the JSON


def test_rounded_weights_keep_three_decimals_and_write_whole_numbers_as_ints() -> None:
    assert rounded_weights(torch.tensor([[[[1.0, 0.0], [0.12345, 0.87655]]]])) == [[[[1, 0], [0.123, 0.877]]]]
    assert json.dumps(rounded_weights(torch.tensor([[[[1.0, 0.0]]]]))) == "[[[[1, 0]]]]"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_script_is_valid_javascript(tricky_capture, tmp_path) -> None:
    page = save_attention_html(tricky_capture, head_roles(tricky_capture), tmp_path / "a.html", title="demo")
    script = re.search(r"<script>(.*?)</script>", page.read_text(encoding="utf-8"), re.S).group(1)
    (tmp_path / "page.js").write_text(script, encoding="utf-8")
    result = subprocess.run(["node", "--check", str(tmp_path / "page.js")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_an_unwritable_output_path_is_a_user_error(tricky_capture, tmp_path) -> None:
    with pytest.raises(UserError, match="cannot write"):
        save_attention_html(tricky_capture, head_roles(tricky_capture), tmp_path, title="demo")  # a directory


# --------------------------------------------------------------------------------------------
# the command


@pytest.fixture
def run_dir(tmp_path, char_tokenizer: Tokenizer, model: GPT, monkeypatch: pytest.MonkeyPatch):
    from minitx import rundir

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # no idle-core probe, no change
    rundir.save_config(tmp_path, model.config, TrainConfig())
    rundir.save_weights(tmp_path, model)
    char_tokenizer.save(tmp_path / rundir.TOKENIZER)
    return tmp_path


def inspect_args(**overrides) -> dict:
    args = dict(prompt=None, layer=None, head=None, png=None, html=None, device="cpu", max_tokens=None)
    return {**args, **overrides}


def test_the_command_prints_the_guide_the_roles_a_heatmap_and_a_readout(run_dir) -> None:
    out = console()
    run_inspect_attention(run_dir, **inspect_args(console=out))
    text = out.export_text()
    assert text.startswith(HOW_TO_READ)
    assert "what each head does (16 tokens, learned positions)" in text  # the default prompt, cut to block_size
    assert "head 1" in text and "named when:" in text and re.search(r"layer \d head \d: ", text)
    assert text.count(" ← ") == 4 and '15:"g" ← ' in text  # the last four tokens' readout; "...The dog" ends in g


def test_the_command_shows_the_chosen_head_and_writes_png_and_html(run_dir, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out = console()
    png, page = tmp_path / "out" / "a.png", tmp_path / "out" / "a.html"
    run_inspect_attention(run_dir, **inspect_args(prompt="the cat", layer=1, head=0, png=png, html=page, console=out))
    text = out.export_text()
    assert "layer 1 head 0: " in text and "through layer 1 head 0" in text
    assert f"wrote {png}" in text and f"wrote {page}" in text
    assert png.read_bytes().startswith(b"\x89PNG") and page_data(page.read_text(encoding="utf-8"))["selected"] == {
        "layer": 1, "head": 0}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (dict(layer=2), r"--layer 2 does not exist: this model has layers 0\.\.1"),
        (dict(layer=-1), r"--layer -1 does not exist"),
        (dict(head=5), r"--head 5 does not exist: each layer has heads 0\.\.1"),
        (dict(prompt=""), "empty after tokenizing"),
        (dict(max_tokens=0), "--max-tokens must be at least 1"),
    ],
)
def test_bad_flags_are_user_errors_before_anything_is_printed(run_dir, flags, message) -> None:
    out = console()
    with pytest.raises(UserError, match=message):
        run_inspect_attention(run_dir, **inspect_args(console=out, **flags))
    assert out.export_text() == ""


def test_the_cli_command_runs_and_a_bad_layer_is_one_line_with_exit_2(run_dir) -> None:
    from typer.testing import CliRunner

    from minitx.cli import app

    ok = CliRunner().invoke(app, ["inspect-attention", str(run_dir), "--prompt", "the cat", "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert "what each head does" in ok.output and "named when:" in ok.output
    bad = CliRunner().invoke(app, ["inspect-attention", str(run_dir), "--layer", "7", "--device", "cpu"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == ["minitx: error: --layer 7 does not exist: this model has layers 0..1"]
