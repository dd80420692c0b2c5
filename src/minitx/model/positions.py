"""Positional encodings: telling a transformer *where* each token stands (the long story: docs/model.md).

Self-attention alone treats its input as a set; each kind puts order back in one place:

    sinusoidal    x[p] = √d·wte[token_p] + PE[p]      a fixed table of waves, added to the embeddings
    learned       x[p] = wte[token_p] + wpe[p]        a trained table (GPT-2), added to the embeddings
    rope          q, k turned by p·θ_i                q·k then depends on the distance i - j only
    alibi         score[h, i, j] -= m_h·(i - j)       a per-head penalty growing with distance
    none          nothing                             only the causal mask orders the tokens

Every kind is a `PositionalEncoding` with three hooks (`add_to_embeddings`, `rotate_qk`, `score_bias`)
and answers the questions other rooms ask about it as class attributes -- does it extrapolate, what
does it export to, what does inspect-positions show, what is its module called -- so no code outside
this file branches on a kind's name. `ENCODINGS` is the one registry; adding a kind is one class and
one line there (docs/model.md, "How to add a positional encoding"). The hooks act on self-attention only.

    >>> from minitx.config import ModelConfig
    >>> pos = build_positional_encoding(ModelConfig(vocab_size=50, dim=8, n_heads=2, pos="sinusoidal"))
    >>> pos.encoding_matrix(3).shape, pos.extrapolates, pos.hf_architecture
    (torch.Size([3, 8]), True, 'gpt2')
"""

from __future__ import annotations

import math
from typing import ClassVar

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
    """Base class: every hook leaves its input unchanged, so a subclass overrides only what it needs.

    The class attributes are each kind's answers to the questions the rest of minitx asks;
    `REQUIRED_ANSWERS` lists those a subclass must set itself (a test holds every registered kind to it).
    """

    #: The name of the kind: `--pos`, config.json's `pos`, a member of config.PositionKind.
    kind: ClassVar[str]
    #: The module's key in the model (`transformer.<key>`): GPT-2 calls its learned table `wpe`.
    parameter_key: ClassVar[str] = "pos"
    #: Do positions past the training block mean anything? If not, `stretch_refusal` says why.
    extrapolates: ClassVar[bool]
    stretch_refusal: ClassVar[str] = ""
    #: Does it tell the model anything about order? (Not `none`: only the causal mask does.)
    has_signal: ClassVar[bool] = True
    #: `encoding_matrix` returns the [N, dim] table added to the embeddings (else None).
    has_table: ClassVar[bool] = False
    #: That table is trained (a parameter) rather than computed from a formula.
    trained: ClassVar[bool] = False
    #: The transformers architecture that computes the same function (interop/hf_export.py), or None
    #: with `hf_refusal` saying why not.
    hf_architecture: ClassVar[str | None]
    hf_refusal: ClassVar[str] = ""
    #: What `minitx inspect-positions` draws: "similarity" (an [N, N] matrix over position pairs, see
    #: `similarity_matrix`), "head_bias" (`score_bias` per head, with `slopes`), or "nothing".
    view: ClassVar[str]
    #: For a "similarity" view: what the matrix holds, the heading of its mean by distance, and whether
    #: the view says where that mean falls below 0.5.
    view_meaning: ClassVar[str] = ""
    view_column: ClassVar[str] = "mean cosine"
    view_decay: ClassVar[bool] = False
    #: Sentences the view adds about this kind, after its numbers.
    view_notes: ClassVar[tuple[str, ...]] = ()
    #: Token embeddings are multiplied by this before positions are added (None: not scaled).
    embedding_scale: float | None = None

    #: The answers every kind must give itself: no default here, so a class that forgets one fails its test.
    REQUIRED_ANSWERS: ClassVar[tuple[str, ...]] = ("kind", "extrapolates", "hf_architecture", "view")
    VIEWS: ClassVar[tuple[str, ...]] = ("similarity", "head_bias", "nothing")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.check_config(config)
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

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Raise UserError if this kind cannot work with the shape `config` gives (nothing to check by default)."""

    def similarity_matrix(self, n_positions: int) -> Tensor | None:
        """[N, N] in float64: how alike positions i and j look to the model; by default the cosine of table rows."""
        if not self.has_table:
            return None
        return cosine_similarity_matrix(self.encoding_matrix(n_positions))

    def pair_frequencies(self) -> list[float] | None:
        """The angle (radians per token) each pair of dimensions turns by, fastest first; None if nothing turns."""
        return None

    def extra_repr(self) -> str:
        return f"kind={self.kind}, block_size={self.block_size}"


class NoPositions(PositionalEncoding):
    """`none`: no positional signal at all; only the causal mask orders the tokens.

    A model can still work out where it is: with a beginning-of-sequence token (<|doc|>) in view,
    a head that spreads its attention evenly over all visible tokens gives it ~1/(t+1) of that
    token's value, which is a usable clock.
    """

    kind = "none"
    extrapolates = True
    has_signal = False
    view = "nothing"
    view_notes = (
        "This model has no positional encoding: nothing tells it where a token stands. It can still work it out: the "
        "causal mask lets token t see exactly t + 1 tokens, and with <|doc|> at the start of every document a head "
        "that spreads its attention evenly takes ~1/(t + 1) of <|doc|>'s value -- a clock that gets harder to read "
        "as t grows.",
    )
    hf_architecture = "gpt2"  # GPT-2 with wpe = zeros

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
    extrapolates = True
    has_table = True
    hf_architecture = "gpt2"  # wpe = the table, wte scaled by √d (and so untied)
    view = "similarity"
    view_meaning = "cosine similarity of position vectors"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.register_buffer("table", sinusoidal_table(config.block_size, config.dim), persistent=False)
        self.embedding_scale = math.sqrt(config.dim)

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        if config.dim % 2:
            raise UserError(f"sinusoidal positions need an even dim, got {config.dim}")

    def add_to_embeddings(self, x: Tensor, start_pos: int = 0) -> Tensor:
        check_positions(start_pos, x.shape[1], self.block_size)
        # √d·x + PE in one kernel: [B, T, C] * scale + [T, C]
        return torch.add(self.table.narrow(0, start_pos, x.shape[1]), x, alpha=self.embedding_scale)

    def encoding_matrix(self, n_positions: int) -> Tensor:
        check_positions(0, n_positions, self.block_size)
        return self.table[:n_positions]

    def describe(self) -> str:
        return "sinusoidal: fixed sin/cos waves added to the token embeddings (scaled by √d)"

    def pair_frequencies(self) -> list[float] | None:
        if self.block_size < 2:
            return None
        return _angles(self.table[1, 0::2], self.table[1, 1::2])


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
    parameter_key = "wpe"
    extrapolates = False
    stretch_refusal = "learned positions have no vector past the training block"
    has_table = True
    trained = True
    hf_architecture = "gpt2"
    view = "similarity"
    view_meaning = "cosine similarity of position vectors"
    view_decay = True

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
    extrapolates = True
    hf_architecture = "gpt_neox"
    view = "similarity"
    view_meaning = "factor RoPE puts on q·k of a vector with itself"
    view_column = "mean q·k factor"
    view_decay = True
    view_notes = (
        "The same in every head and layer: RoPE has no trained parameters; each head's q and k decide what it "
        "makes of the rotation.",
    )

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

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        if config.head_dim % 2:
            raise UserError(f"rope needs an even head size; dim/heads = {config.head_dim}")

    def similarity_matrix(self, n_positions: int) -> Tensor:
        """mean_k cos((i - j)·θ_k): the factor on q·k when query and key hold one vector, equal energy per pair."""
        check_positions(0, n_positions, self.block_size)
        half = self.head_dim // 2  # the tables hold each angle twice ([angle, angle]); one copy is enough
        unit_pairs = torch.cat([self.cos[:n_positions, :half], self.sin[:n_positions, :half]], dim=1)  # [N, hd]
        unit_pairs = unit_pairs.to("cpu", torch.float64)
        return unit_pairs @ unit_pairs.T / half  # Σ_k cos(iθ_k)cos(jθ_k) + sin(iθ_k)sin(jθ_k) = Σ_k cos((i-j)θ_k)

    def pair_frequencies(self) -> list[float] | None:
        if self.block_size < 2:
            return None
        half = self.head_dim // 2
        return _angles(self.sin[1, :half], self.cos[1, :half])


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
    extrapolates = True
    hf_architecture = "mpt"  # MPT has no biases and a 4x exact-GELU MLP: interop/hf_export.py checks the rest
    view = "head_bias"
    view_notes = (
        "A key d tokens back keeps e^(-m·d) of the weight an equally relevant key at d = 0 would get, so steep heads "
        "read locally and shallow heads far back.",
    )

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


def cosine_similarity_matrix(vectors: Tensor) -> Tensor:
    """[N, D] -> [N, N] cosine of every pair of rows, in float64. Example: rows [1, 0], [1, 1] -> 0.707 off-diagonal."""
    unit = torch.nn.functional.normalize(vectors.detach().to("cpu", torch.float64), dim=1)  # [N, D], rows of length 1
    return unit @ unit.T


def _angles(sin: Tensor, cos: Tensor) -> list[float]:
    """The angles ω (radians) of position 1's (sin ω, cos ω) pairs; ω ≤ 1 rad, so atan2 gives them back."""
    return torch.atan2(sin.double().cpu(), cos.double().cpu()).tolist()


#: THE registry of kinds: one class per `kind`. config.PositionKind repeats the names for the command
#: line (which must not import torch); a test holds the two equal.
ENCODINGS: dict[str, type[PositionalEncoding]] = {
    encoding.kind: encoding
    for encoding in (SinusoidalPositions, LearnedPositions, RotaryPositions, AlibiPositions, NoPositions)
}


def encoding_class(kind: str) -> type[PositionalEncoding]:
    """The class registered for `kind` (UserError listing the known ones if there is none)."""
    if kind not in ENCODINGS:
        raise UserError(f"unknown positional encoding {kind!r}; choose one of {', '.join(ENCODINGS)}")
    return ENCODINGS[kind]


def build_positional_encoding(config: ModelConfig) -> PositionalEncoding:
    """The PositionalEncoding named by `config.pos` (UserError if its shape does not suit the kind)."""
    return encoding_class(config.pos)(config)
