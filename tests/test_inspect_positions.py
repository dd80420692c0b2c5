"""Tests for the positional-encoding views: the numbers for every kind, the terminal and PNG renderings, the command."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from rich.console import Console

from minitx.commands.inspect import run_inspect_positions
from minitx.config import TrainConfig
from minitx.errors import UserError
from minitx.inspect.positions import (
    MAX_SHOWN_POSITIONS,
    alibi_bias,
    by_distance,
    evenly_spaced,
    inspect_positions,
    position_similarity,
    table_distances,
)
from minitx.inspect.views.positions import position_report_view, save_distance_png, save_positions_png
from minitx.model.positions import alibi_slopes

KINDS = ["learned", "sinusoidal", "rope", "alibi", "none"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N = 16  # the tiny models' block_size


def rendered(report) -> str:
    console = Console(record=True, width=120)
    console.print(position_report_view(report, console.width))
    return console.export_text()


# --------------------------------------------------------------------------------------------
# the numbers, kind by kind


def test_sinusoidal_similarity_depends_only_on_distance(make_tiny_model) -> None:
    similarity = position_similarity(make_tiny_model("sinusoidal"), N)
    assert similarity.shape == (N, N)
    assert torch.allclose(similarity.diagonal(), torch.ones(N, dtype=similarity.dtype), atol=1e-6)
    assert torch.allclose(similarity, similarity.T, atol=1e-6)
    for d in range(N):
        diagonal = similarity.diagonal(offset=d)
        assert (diagonal - diagonal[0]).abs().max() < 1e-5, f"distance {d} is not constant"


def rope_factor_from_the_formula(head_dim: int, n: int) -> torch.Tensor:
    """mean_k cos((i - j)·θ_k) with θ_k = 10000^(-k/(hd/2)), written out independently of the module."""
    half = head_dim // 2
    theta = torch.tensor([10000.0 ** (-k / half) for k in range(half)], dtype=torch.float64)
    distance = torch.arange(n, dtype=torch.float64).view(-1, 1) - torch.arange(n, dtype=torch.float64)  # [n, n]
    return torch.cos(distance.unsqueeze(-1) * theta).mean(dim=-1)  # [n, n]


def test_rope_factor_is_one_at_distance_zero_and_the_mean_cosine_of_d_theta(make_tiny_model) -> None:
    model = make_tiny_model("rope")
    factor = position_similarity(model, N)
    assert torch.allclose(factor.diagonal(), torch.ones(N, dtype=factor.dtype), atol=1e-6)
    assert torch.allclose(factor, rope_factor_from_the_formula(model.config.head_dim, N), atol=1e-5)
    report = inspect_positions(model, N)
    assert report.distance_profile[0] == pytest.approx(1.0)
    assert min(report.distance_profile) < 0.9  # the pairs dephase: the factor falls away from 1


def test_rope_factor_matches_what_rotate_qk_does_to_a_vector_with_itself(make_tiny_model) -> None:
    model = make_tiny_model("rope")
    head_dim = model.config.head_dim
    half = head_dim // 2
    angle = torch.rand(half, generator=torch.Generator().manual_seed(1)) * 6.283
    x = torch.cat([angle.cos(), angle.sin()])  # every pair (x_k, x_{k+hd/2}) of length 1: equal energy
    same_vector_everywhere = x.expand(1, 1, N, head_dim)  # [B=1, H=1, T, hd]
    rotated, _ = model.positions.rotate_qk(same_vector_everywhere, same_vector_everywhere)
    dots = rotated[0, 0] @ rotated[0, 0].T / x.dot(x)  # [T, T], q·k at positions i, j over q·k unrotated
    assert torch.allclose(position_similarity(model, N).float(), dots, atol=1e-5)


@pytest.mark.parametrize("n_heads, dim", [(4, 32), (6, 48)])
def test_alibi_bias_is_minus_slope_times_distance_per_head(make_tiny_model, n_heads: int, dim: int) -> None:
    model = make_tiny_model("alibi", n_heads=n_heads, dim=dim)
    bias = alibi_bias(model, N)
    assert bias.shape == (n_heads, N, N)
    distance = torch.arange(N).view(-1, 1) - torch.arange(N)  # i - j
    seen = distance >= 0
    for head, slope in enumerate(alibi_slopes(n_heads).tolist()):
        assert torch.allclose(bias[head][seen], (-slope * distance[seen]).double(), atol=1e-6)
    report = inspect_positions(model, N)
    assert report.slopes == pytest.approx(alibi_slopes(n_heads).tolist())
    assert report.matrix is None and position_similarity(model, N) is None


def random_walk_table(n: int, dim: int) -> torch.Tensor:
    """A smooth table by construction: each position is the previous one plus a small random step."""
    steps = torch.randn(n, dim, generator=torch.Generator().manual_seed(2))
    return steps.cumsum(dim=0) * 0.02


def test_a_smooth_learned_table_beats_the_random_baseline_and_a_random_one_does_not(make_tiny_model) -> None:
    model = make_tiny_model("learned")
    untrained = inspect_positions(model, N).learned  # GPT-2 init: every row an independent random vector
    assert not untrained.looks_trained
    assert abs(untrained.neighbour_cosine) < 4 * untrained.chance_spread
    with torch.no_grad():
        model.positions.weight.copy_(random_walk_table(N, model.config.dim))
    smooth = inspect_positions(model, N).learned
    assert smooth.looks_trained
    assert smooth.neighbour_cosine > smooth.random_neighbour_cosine + 0.5
    assert smooth.neighbour_cosine > smooth.far_cosine  # similarity fades with distance
    assert smooth.random_neighbour_cosine == pytest.approx(untrained.random_neighbour_cosine)  # a fixed baseline


def test_the_random_baseline_leaves_the_global_rng_alone(make_tiny_model) -> None:
    model = make_tiny_model("learned")
    before = torch.get_rng_state()
    inspect_positions(model, N)
    assert torch.equal(before, torch.get_rng_state())


def test_a_model_without_positions_reports_no_signal_and_still_renders(make_tiny_model) -> None:
    report = inspect_positions(make_tiny_model("none"), N)
    assert not report.has_signal
    assert report.matrix is None and report.distance_profile is None
    text = rendered(report)
    assert "no positional encoding" in text and "<|doc|>" in text and "causal mask" in text


@pytest.mark.parametrize("kind", ["learned", "rope", "alibi"])
@pytest.mark.parametrize("n_positions", [N + 1, 0])
def test_asking_for_positions_outside_the_block_is_a_user_error_naming_block_size(
    make_tiny_model, kind: str, n_positions: int
) -> None:
    model = make_tiny_model(kind)
    for look in (inspect_positions, position_similarity):
        with pytest.raises(UserError, match=f"block_size {N}"):
            look(model, n_positions)


def test_by_distance_averages_each_diagonal_below_the_main_one() -> None:
    assert by_distance(torch.tensor([[1.0, 0.0], [0.5, 1.0]])) == [1.0, 0.5]
    matrix = torch.arange(9.0).view(3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    assert by_distance(matrix) == [4.0, 5.0, 6.0]  # (0+4+8)/3, (3+7)/2, 6


def test_table_distances_and_evenly_spaced_positions() -> None:
    assert table_distances(20) == [0, 1, 2, 4, 8, 16, 19]
    assert table_distances(16) == [0, 1, 2, 4, 8, 15]
    assert table_distances(1) == [0]
    assert evenly_spaced(9, 3) == [0, 4, 8]
    assert evenly_spaced(5) == [0, 1, 2, 3, 4]
    shown = evenly_spaced(128)
    assert len(shown) == MAX_SHOWN_POSITIONS and shown[0] == 0 and shown[-1] == 127
    assert all(a < b for a, b in zip(shown, shown[1:], strict=False))


# --------------------------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize("kind", KINDS)
def test_rendering_names_the_kind_and_shows_every_table_distance(make_tiny_model, kind: str) -> None:
    report = inspect_positions(make_tiny_model(kind), N)
    text = rendered(report)
    assert text.startswith(kind + ":")  # the describe() line comes first
    if kind == "alibi":
        assert all(f"d={d}" in text for d in table_distances(N)[1:])
        assert "0.25" in text  # head 0's slope with 4 heads, 2^-2
    elif kind != "none":
        for d in table_distances(N):
            row = re.search(rf"│\s+{d} │\s+(-?\d\.\d{{3}})", text)
            assert row is not None, f"no row for distance {d}"
            assert float(row.group(1)) == pytest.approx(report.distance_profile[d], abs=1e-3)


def test_long_blocks_are_shown_at_evenly_spaced_positions(make_tiny_model) -> None:
    report = inspect_positions(make_tiny_model("sinusoidal", block_size=100), 100)
    text = rendered(report)
    assert "every ~2.5 positions" in text
    assert re.search(r"^\s*99\s+39", text, re.MULTILINE)  # the last row is position 99, shown as row 39
    assert re.search(r"│\s+99 │", text)  # the distance table ends at N - 1


def test_learned_rendering_compares_with_random_vectors(make_tiny_model) -> None:
    text = rendered(inspect_positions(make_tiny_model("learned"), N))
    assert "random vectors" in text and "looks untrained" in text


# --------------------------------------------------------------------------------------------
# PNG files


@pytest.mark.parametrize("kind", KINDS)
def test_png_is_written_for_every_kind(make_tiny_model, tmp_path, kind: str) -> None:
    pytest.importorskip("matplotlib")
    report = inspect_positions(make_tiny_model(kind), N)
    heatmap = save_positions_png(report, tmp_path / f"{kind}.png")
    assert heatmap.read_bytes().startswith(PNG_SIGNATURE)
    if report.has_signal:
        plot = save_distance_png(report, tmp_path / f"{kind}-by-distance.png")
        assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_png_without_matplotlib_is_a_user_error_naming_the_extra(make_tiny_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    report = inspect_positions(make_tiny_model("learned"), N)
    for save in (save_positions_png, save_distance_png):
        with pytest.raises(UserError, match=r"pip install 'minitx\[plot\]'"):
            save(report, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the command


def save_run(path, config) -> None:
    """A saved tiny run (char tokenizer) as `minitx train` would leave it."""
    from minitx import rundir
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer

    tokenizer = Tokenizer.train_char("<|doc|>the cat sat on the mat.\n")
    model = GPT(config)
    rundir.save_config(path, model.config, TrainConfig())
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)


@pytest.fixture
def run_dir(tmp_path, tiny_config, monkeypatch: pytest.MonkeyPatch):
    """A saved tiny run with rope positions."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    save_run(tmp_path / "run", tiny_config("rope", vocab_size=13))
    return tmp_path / "run"


def test_several_runs_are_compared_in_one_table_and_one_png(tmp_path, tiny_config, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    kinds = ["learned", "rope", "alibi", "none"]
    for kind in kinds:
        save_run(tmp_path / kind, tiny_config(kind, vocab_size=13, block_size=16 if kind != "rope" else 24))
    console = Console(record=True, width=160)
    png = tmp_path / "side-by-side.png"
    run_inspect_positions([tmp_path / kind for kind in kinds], png=png, device="cpu", console=console)
    text = console.export_text()
    assert all(f"{kind}: {kind}" in text for kind in kinds)  # each run's describe() line, under its name
    cells = [[cell.strip() for cell in line.split("│") if cell.strip()] for line in text.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row[:1] in (["0"], ["15"])}
    assert rows["0"][:2] == ["1.000", "1.000"] and rows["0"][2:] == ["1.000", "-"]  # distance 0: alike; none: -
    assert len(rows["15"]) == 4  # 16 positions: the smallest block of the runs
    assert png.read_bytes().startswith(PNG_SIGNATURE) and f"wrote {png}" in text


def test_inspect_positions_command_prints_the_view_and_writes_both_pngs(run_dir, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    console = Console(record=True, width=120)
    png = tmp_path / "views" / "pos.png"
    run_inspect_positions(run_dir, png=png, device="cpu", console=console)
    text = console.export_text()
    assert text.startswith("rope:") and f"positions 0..{N - 1}" in text  # default: the whole block
    for path in (png, tmp_path / "views" / "pos-by-distance.png"):
        assert path.read_bytes().startswith(PNG_SIGNATURE) and f"wrote {path}" in text


def test_inspect_positions_command_refuses_more_positions_than_the_block(run_dir) -> None:
    with pytest.raises(UserError, match=f"block_size {N}"):
        run_inspect_positions(run_dir, positions=N + 1, device="cpu", console=Console(record=True))


def test_the_cli_command_runs_and_too_many_positions_is_one_line_with_exit_2(run_dir) -> None:
    from typer.testing import CliRunner

    from minitx.cli import app

    ok = CliRunner().invoke(app, ["inspect-positions", str(run_dir), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("rope:") and "distance" in ok.output
    bad = CliRunner().invoke(app, ["inspect-positions", str(run_dir), "--positions", "17", "--device", "cpu"])
    assert bad.exit_code == 2
    assert len(bad.output.strip().splitlines()) == 1 and "block_size 16" in bad.output
