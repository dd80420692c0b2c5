"""Positional encodings: telling a transformer *where* each token stands.

Self-attention on its own is permutation-equivariant: shuffle the input tokens and the outputs are
shuffled the same way, nothing else changes. Each output is a weighted sum over the other tokens,
and neither the weights (dot products of content vectors) nor the sum care about order. So without
help, "dog bites man" and "man bites dog" look alike to a layer -- apart from the causal mask, which
does leak some order (token t sees exactly t + 1 tokens). Positional encodings put order back in,
in one of three places:

    where it enters          kind          what is added / changed
    ---------------------    ----------    ------------------------------------------------------
    the embeddings           sinusoidal    a fixed wave pattern PE[p] is added to token p's vector
                             learned       a trained vector wpe[p] is added to token p's vector
    queries and keys         rope          q and k are rotated by an angle proportional to p
    the attention scores     alibi         a penalty proportional to the distance i - j is added
    nowhere                  none          only the causal mask (a model can count from <|doc|>)

Every kind is a `PositionalEncoding` with the same three hooks, each a no-op unless overridden:

    add_to_embeddings(x, start_pos)           x: [B, T, C] -> [B, T, C]
    rotate_qk(q, k, start_pos)                q, k: [B, H, T, hd] -> (q, k)
    score_bias(t_q, t_k, start_pos)           -> [H, t_q, t_k] added to q·k/√hd, or None

They act on self-attention only. In cross-attention a query's position counts along the target and
a key's along the source, so neither a rotation by i - j nor a penalty on it means anything; the
encoder's outputs already carry the source positions in their content.

`start_pos` is the absolute position of the first token in the call: 0 for a full forward pass,
`cache.length` when a KV cache already holds earlier tokens. Tables cover `block_size` positions;
asking for a position beyond that is an error, never a silent wrap-around.

Example:
    >>> from minitx.config import ModelConfig
    >>> pos = build_positional_encoding(ModelConfig(vocab_size=50, dim=8, n_heads=2, pos="sinusoidal"))
    >>> pos.encoding_matrix(3).shape
    torch.Size([3, 8])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from minitx.config import ModelConfig
from minitx.errors import UserError


def check_positions(start_pos: int, length: int, block_size: int) -> None:
    """Raise a UserError if positions start_pos .. start_pos+length-1 do not fit in the block."""
    if start_pos < 0 or start_pos + length > block_size:
        raise UserError(
            f"the input reaches position {start_pos + length - 1} but the model only knows positions "
            f"0..{block_size - 1} (block_size {block_size}); feed at most {block_size} tokens at a time"
        )


class PositionalEncoding(nn.Module):
    """Base class: every hook leaves its input unchanged, so a subclass overrides only what it needs."""

    kind: str = "base"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.block_size = config.block_size
        self.dim = config.dim
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim

    def add_to_embeddings(self, x: Tensor, start_pos: int = 0) -> Tensor:
        """Return the token embeddings x [B, T, C] with position information added."""
        return x

    def rotate_qk(self, q: Tensor, k: Tensor, start_pos: int = 0) -> tuple[Tensor, Tensor]:
        """Return queries and keys [B, H, T, hd] for positions start_pos.. with positions mixed in."""
        return q, k

    def score_bias(self, t_q: int, t_k: int, start_pos: int = 0, bidirectional: bool = False) -> Tensor | None:
        """Bias [H, t_q, t_k] for queries at start_pos.. and keys at 0..t_k-1, or None for no bias.

        `bidirectional`: for an encoder, whose queries also see keys ahead of them.
        """
        return None

    def encoding_matrix(self, n_positions: int) -> Tensor | None:
        """The vectors [n_positions, dim] this encoding adds to embeddings (None if it adds none)."""
        return None

    def describe(self) -> str:
        """One line saying how this encoding works (for inspection output)."""
        return "no positional signal"

    def extra_repr(self) -> str:
        return f"kind={self.kind}, block_size={self.block_size}"


class NoPositions(PositionalEncoding):
    """`none`: no positional signal at all; only the causal mask orders the tokens.

    A model can still work out where it is: with a beginning-of-sequence token (<|doc|>) in view,
    a head that spreads its attention evenly over all visible tokens gives it ~1/(t+1) of that
    token's value, which is a usable clock.
    """

    kind = "none"

    def describe(self) -> str:
        return "none: no positional signal; the causal mask alone orders the tokens"


class SinusoidalPositions(PositionalEncoding):
    """`sinusoidal`: a fixed table of waves added to the token embeddings (Vaswani et al., 2017).

        PE[p, 2i]   = sin(p / 10000^(2i/d))
        PE[p, 2i+1] = cos(p / 10000^(2i/d))

    Each pair of dimensions is a clock hand turning at its own speed, from one turn every 2π
    tokens (i = 0) to very slow ones, so every position gets a distinct pattern, and PE[p + k] is a
    fixed rotation of PE[p] -- relative offsets are easy for a linear layer to read. The table is a
    buffer, not a parameter, and is not saved in checkpoints: it is rebuilt from the formula.

    As in the paper, the token embeddings are multiplied by √d before the table is added,
    x[p] = √d · wte[token_p] + PE[p]. Without it, embeddings initialised at std 0.02 would be
    ~35 times smaller than the table's entries (|sin| and |cos| average 0.7), and the token
    identity would start almost drowned out by the position.
    """

    kind = "sinusoidal"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.register_buffer("table", sinusoidal_table(config.block_size, config.dim), persistent=False)
        self.embedding_scale = math.sqrt(config.dim)

    def add_to_embeddings(self, x: Tensor, start_pos: int = 0) -> Tensor:
        check_positions(start_pos, x.shape[1], self.block_size)
        # √d·x + PE in one kernel: [B, T, C] * scale + [T, C]
        return torch.add(self.table.narrow(0, start_pos, x.shape[1]), x, alpha=self.embedding_scale)

    def encoding_matrix(self, n_positions: int) -> Tensor:
        check_positions(0, n_positions, self.block_size)
        return self.table[:n_positions]

    def describe(self) -> str:
        return "sinusoidal: fixed sin/cos waves added to the token embeddings (scaled by √d)"


def sinusoidal_table(n_positions: int, dim: int) -> Tensor:
    """The [n_positions, dim] sin/cos table; column 2i is sin(p·ω_i), column 2i+1 is cos(p·ω_i).

    Example: sinusoidal_table(2, 2) == [[sin 0, cos 0], [sin 1, cos 1]] == [[0, 1], [0.841, 0.540]].
    """
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # [P, 1]
    frequency = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # ω_i, [dim/2]
    angle = position * frequency  # [P, dim/2]
    table = torch.empty(n_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table.float()


class LearnedPositions(PositionalEncoding):
    """`learned`: a trained vector per position, added to the token embedding (GPT-2).

        x[p] = wte[token_p] + wpe[p]

    `weight` is an Embedding-shaped table [block_size, dim]; the model registers this module as
    `transformer.wpe`, so the parameter is `transformer.wpe.weight` exactly as in GPT-2. Positions
    never seen in training (beyond block_size) simply have no vector.
    """

    kind = "learned"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.weight = nn.Parameter(torch.empty(config.block_size, config.dim))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def add_to_embeddings(self, x: Tensor, start_pos: int = 0) -> Tensor:
        check_positions(start_pos, x.shape[1], self.block_size)
        # A slice of the table is the same as looking up positions start_pos.., without an index tensor.
        return x + self.weight.narrow(0, start_pos, x.shape[1])  # [B, T, C] + [T, C]

    def encoding_matrix(self, n_positions: int) -> Tensor:
        check_positions(0, n_positions, self.block_size)
        return self.weight[:n_positions].detach()

    def describe(self) -> str:
        return "learned: a trained vector per position (transformer.wpe) added to the token embeddings"


class RotaryPositions(PositionalEncoding):
    """`rope`: rotate queries and keys by position-dependent angles (Su et al., 2021).

    Split each head vector into pairs (x_i, x_{i+hd/2}) and turn pair i by the angle p·θ_i:

        θ_i = 10000^(-2i/hd)
        rot(x, p)_i        = x_i cos(pθ_i) - x_{i+hd/2} sin(pθ_i)
        rot(x, p)_{i+hd/2} = x_i sin(pθ_i) + x_{i+hd/2} cos(pθ_i)

    Rotations preserve dot products up to the difference of angles, so
    rot(q, i)·rot(k, j) depends on q, k and i - j only: attention sees *relative* position.
    Values are not rotated. cos/sin tables are buffers over block_size positions, not saved.
    """

    kind = "rope"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        half = config.head_dim // 2
        theta = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)  # θ_i, [hd/2]
        angle = torch.arange(config.block_size, dtype=torch.float64).unsqueeze(1) * theta  # [P, hd/2]
        angle = torch.cat([angle, angle], dim=1)  # both halves of a pair turn together, [P, hd]
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def rotate_qk(self, q: Tensor, k: Tensor, start_pos: int = 0) -> tuple[Tensor, Tensor]:
        t = q.shape[2]
        check_positions(start_pos, t, self.block_size)
        cos = self.cos.narrow(0, start_pos, t)  # [T, hd], broadcasts over [B, H, T, hd]
        sin = self.sin.narrow(0, start_pos, t)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def describe(self) -> str:
        return "rope: queries and keys rotated by position, so q·k depends on the distance i - j"


def rotate_half(x: Tensor) -> Tensor:
    """[a, b] -> [-b, a] along the last dimension: the 90° turn of every (x_i, x_{i+hd/2}) pair."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class AlibiPositions(PositionalEncoding):
    """`alibi`: a per-head penalty growing linearly with distance (Press et al., 2022).

        score[h, i, j] = q_i·k_j / √hd  -  m_h · (i - j)        (|i - j| in an encoder)

    with slopes m_h = 2^(-8(h+1)/H): the first head forgets quickly (m = 1/2 with 8 heads), later
    heads look far back. Entries with j > i get a positive bias but are masked out anyway. When H
    is not a power of two, the paper takes the slopes for the power of two n just below H and fills
    the remaining H - n heads with every other slope of the 2n-head sequence (see `alibi_slopes`).
    """

    kind = "alibi"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.register_buffer("slopes", alibi_slopes(config.n_heads), persistent=False)

    def score_bias(self, t_q: int, t_k: int, start_pos: int = 0, bidirectional: bool = False) -> Tensor:
        check_positions(start_pos, t_q, self.block_size)
        check_positions(0, t_k, self.block_size)
        device = self.slopes.device
        query_pos = torch.arange(start_pos, start_pos + t_q, device=device).unsqueeze(1)  # [Tq, 1]
        key_pos = torch.arange(t_k, device=device)  # [Tk]
        distance = (query_pos - key_pos).to(self.slopes.dtype)  # i - j, [Tq, Tk]
        if bidirectional:  # an encoder: keys ahead are as far as keys behind
            distance = distance.abs()
        return -self.slopes.view(-1, 1, 1) * distance  # [H, Tq, Tk]

    def describe(self) -> str:
        slopes = ", ".join(f"{m:.3g}" for m in self.slopes.tolist())
        return f"alibi: score penalty -m_h·(i - j), slopes {slopes}"


def alibi_slopes(n_heads: int) -> Tensor:
    """The ALiBi slope of each head, a geometric sequence.

    Examples: 4 heads -> [2^-2, 2^-4, 2^-6, 2^-8];
              6 heads -> the 4-head slopes, then 2^-1 and 2^-3 (odd terms of the 8-head sequence).
    """

    def power_of_two_slopes(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    n = 2 ** math.floor(math.log2(n_heads))  # largest power of two <= n_heads
    slopes = power_of_two_slopes(n)
    if n < n_heads:
        slopes += power_of_two_slopes(2 * n)[0::2][: n_heads - n]
    return torch.tensor(slopes, dtype=torch.float32)


#: One class per kind of config.PositionKind (`--pos`), found by its `kind`; a test checks that none is missing.
ENCODINGS: dict[str, type[PositionalEncoding]] = {
    encoding.kind: encoding
    for encoding in (SinusoidalPositions, LearnedPositions, RotaryPositions, AlibiPositions, NoPositions)
}


def build_positional_encoding(config: ModelConfig) -> PositionalEncoding:
    """The PositionalEncoding named by `config.pos`."""
    if config.pos not in ENCODINGS:
        raise UserError(f"unknown positional encoding {config.pos!r}; choose one of {', '.join(ENCODINGS)}")
    return ENCODINGS[config.pos](config)
