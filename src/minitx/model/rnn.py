"""Before the transformer: the RNN encoder-decoder, with one fixed vector or with attention (docs/rnn.md).

In the notes' notation: a⟨t'⟩ is the encoder's activation at source token t', s⟨t⟩ the decoder's state
after it has read target token t, e⟨t,t'⟩ a score, α⟨t,t'⟩ its softmax over the source, c⟨t⟩ the context.

    RNNEncoderDecoder  "rnn"  (Cho et al. 2014; Sutskever et al. 2014)
        a⟨t'⟩ = GRU(a⟨t'-1⟩, E x⟨t'⟩)                  left to right over the source
        c     = a⟨S⟩                                     the last state: the one vector the decoder receives
        s⟨0⟩ = tanh(W_init c);  s⟨t⟩ = GRU(s⟨t-1⟩, [E y⟨t-1⟩; c])      c seeds s and is read at every step (Cho)
    RNNSearch  "rnn-attention"  (Bahdanau, Cho & Bengio 2015)
        a⟨t'⟩ = [→a⟨t'⟩; ←a⟨t'⟩]                          a bidirectional GRU: each token in both contexts
        e⟨t,t'⟩ = vᵀ tanh(W s⟨t-1⟩ + U a⟨t'⟩)             additive (dot: s·a, general: sᵀ W_a a, Luong 2015)
        α⟨t,t'⟩ = softmax over t' of e⟨t,t'⟩             padding scores -inf: weight exactly 0
        c⟨t⟩ = Σ_t' α⟨t,t'⟩ a⟨t'⟩;   s⟨t⟩ = GRU(s⟨t-1⟩, [E y⟨t-1⟩; c⟨t⟩])
    both:  p(y⟨t⟩ | ·) = softmax(E tanh(W_o [s⟨t⟩; c⟨t⟩; E y⟨t-1⟩]))      E: one table, tied (the transformer's wte)

The transformer kept c⟨t⟩ = Σ α a and changed the rest: the score became a query·key product (s⟨t-1⟩ -> a
query, U a -> keys, a -> separate values), recurrence went (every position at once, so positions must be
added), attention was used inside each stack too (self-attention), and many heads attend side by side.
`decode_next` steps the decoder with a cached state, as `EncoderDecoder.decode_next` does with its KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from minitx.config import ModelConfig
from minitx.errors import UserError
from minitx.model.architecture import Architecture, Stack
from minitx.model.hooks import HookedModel, HookPoint
from minitx.model.positions import NoPositions

#: std of the shared token table E: 1, torch's own for nn.Embedding. An RNN has no LayerNorm to rescale its
#: inputs, and a GRU's weights start at ±1/√H, so E x must be of order 1 for the gates to feel the words at all:
#: with GPT-2's small table (std 0.05) both RNNs sat near a target-side language model for hundreds of steps
#: (val loss 4.7 / 4.4 after 300 steps of the attention experiment's pairs, against 2.05 / 1.35 with std 1;
#: docs/decisions.md).
EMBEDDING_STD = 1.0


def check_length(length: int, block_size: int, what: str) -> None:
    """UserError if a sequence of `length` tokens exceeds the longest one the model is configured for."""
    if length > block_size:
        raise UserError(f"the {what} is {length} tokens but the model reads at most {block_size} "
                        "(its block size); give a shorter sentence")


@dataclass
class RNNDecodeState:
    """The decoder's cache: everything a one-token step needs, so no step re-reads the target so far.

    `hidden` is s [L, B, C] (every decoder layer's state), `cell` the LSTM's cell state (None for a GRU).
    The source side is filled once by `prefill_cross`: `annotations` a [B, S, C] and `keys` [B, S, A]
    (RNNSearch: a seen by the score, e.g. U a, made once per source), or `context` c [B, C] (RNNEncoderDecoder).
    `length`: target tokens read so far. `reorder(rows)` makes row i continue row rows[i] (beam search);
    the source side is not moved, since beam search only continues beams of the same sentence.
    """

    hidden: Tensor | None = None
    cell: Tensor | None = None
    annotations: Tensor | None = None
    keys: Tensor | None = None
    context: Tensor | None = None
    length: int = 0

    def reorder(self, rows: Tensor) -> None:
        """Row i of the decoder state becomes row rows[i]: the state of the beam it continues."""
        self.hidden = self.hidden.index_select(1, rows)
        if self.cell is not None:
            self.cell = self.cell.index_select(1, rows)


class RNNPlan(NamedTuple):
    """What `decode_next` needs besides the state, made once per generation: the source's padding."""

    source_padding: Tensor | None


class RNNEncoder(nn.Module):
    """The source side: E x⟨t'⟩ (`hook_embed`), the recurrent layers, the memory the decoder reads (`hook_memory`).

    `layers` holds one torch RNN per layer (nn.GRU or nn.LSTM, fused kernels; bidirectional for RNNSearch),
    so the stack is a list of blocks like a transformer's. A padded batch is packed once and stays packed
    through every layer: each row stops at its own last token, in both directions.
    """

    def __init__(self, kind: type[nn.RNNBase], dim: int, layers: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.hook_embed = HookPoint()
        hidden = dim // 2 if bidirectional else dim
        self.layers = nn.ModuleList(kind(dim, hidden, batch_first=True, bidirectional=bidirectional)
                                    for _ in range(layers))
        self.hook_memory = HookPoint()
        self.dropout_p = dropout

    def forward(self, x: Tensor, source_padding: Tensor | None) -> tuple[Tensor, Tensor]:
        """(the top layer's outputs [B, S, C], 0 on padding; its final state [directions, B, H])."""
        s = x.shape[1]
        packed = source_padding is not None and bool(source_padding.any())
        h: Tensor | PackedSequence = x
        if packed:
            lengths = (~source_padding).sum(dim=1).cpu()
            h = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        final: Tensor | tuple[Tensor, Tensor] = x
        for i, layer in enumerate(self.layers):
            if i and self.dropout_p > 0 and self.training:  # between layers, as nn.GRU(dropout=...) does
                h = h._replace(data=F.dropout(h.data, self.dropout_p)) if packed else F.dropout(h, self.dropout_p)
            h, final = layer(h)
        outputs = pad_packed_sequence(h, batch_first=True, total_length=s)[0] if packed else h
        if isinstance(final, tuple):  # LSTM: (h, cell); the decoder is seeded from h
            final = final[0]
        return outputs, final


class _Seq2SeqRNN(HookedModel, nn.Module):
    """The parts both models share: the token table E (`wte`), the deep output layer, the loss, the step API.

    A subclass sets `encoder` (an RNNEncoder), `init_state` (W_init) and `decoder` (with `hook_embed`,
    `layers`, `out_proj`, `hook_final`) and implements `encode`, `decode`, `prefill_cross` and
    `_step_logits` (one step from the cached state). Its hook points (HOOK_NAMES, docs/rnn.md) are module
    paths, as the transformers' are.
    """

    reads_source: ClassVar[bool] = True
    HOOK_NAMES: ClassVar[tuple[str, ...]] = ("encoder.hook_embed", "encoder.hook_memory", "decoder.hook_embed",
                                            "decoder.hook_final")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.cell_kind, self.attention_kind = config.cell, config.attention  # checked by config.validate()
        self.encoder_layers = config.encoder_layers or config.n_layers
        self.dropout_p = config.dropout
        self.wte = nn.Embedding(config.vocab_size, config.dim)  # E: both languages, one table
        nn.init.normal_(self.wte.weight, std=EMBEDDING_STD)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # weight tying: one Parameter, two roles
        self.no_positions = NoPositions(config)  # no parameters: order comes from the recurrence

    @property
    def positions(self) -> NoPositions:
        """The kind "none": an RNN adds no position to its inputs; it learns order by reading in order."""
        return self.no_positions

    @property
    def rnn_class(self) -> type[nn.RNNBase]:
        return nn.GRU if self.cell_kind == "gru" else nn.LSTM

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point by name (its module path), in the order one forward pass reaches them."""
        return {name: self.get_submodule(name) for name in self.HOOK_NAMES}

    def _embed(self, ids: Tensor) -> Tensor:
        x = self.wte(ids)  # [B, T, C]
        return F.dropout(x, self.dropout_p, self.training) if self.dropout_p > 0 else x

    def _run_encoder(self, source: Tensor, source_padding: Tensor | None) -> tuple[Tensor, Tensor]:
        """(outputs [B, S, C], the top layer's final state [directions, B, H]) over the embedded source."""
        check_length(source.shape[1], self.config.block_size, "source")
        return self.encoder(self.encoder.hook_embed(self._embed(source)), source_padding)

    def _output(self, s_top: Tensor, context: Tensor, embedded: Tensor, hooked: bool = True) -> Tensor:
        """logits = E tanh(W_o [s; c; E y⟨t-1⟩]): [..., C] each -> [..., V] (`decoder.hook_final` before E)."""
        out = torch.tanh(self.decoder.out_proj(torch.cat([s_top, context, embedded], dim=-1)))
        if hooked:
            out = self.decoder.hook_final(out)
        if self.dropout_p > 0:
            out = F.dropout(out, self.dropout_p, self.training)
        return self.lm_head(out)

    def forward(
        self,
        source: Tensor,
        target: Tensor,
        source_padding: Tensor | None = None,
        targets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits [B, T, V] for every target position (teacher forcing), and the loss if `targets` are given.

        The contract of `EncoderDecoder.forward`: `target` is the decoder's input (the start token, then
        the translation), `targets` what each position should predict, -1 where nothing (no loss there);
        the loss is the mean cross-entropy over the real target tokens, in fp32.
        """
        memory = self.encode(source, source_padding)
        logits = self.decode(target, memory, source_padding)
        loss = None
        if targets is not None:
            flat = logits.reshape(-1, logits.shape[-1]).float()
            loss = F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)
        return logits, loss

    # -- one token at a time (greedy and beam search) -------------------------------------------
    def new_cache(self, batch_size: int, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> RNNDecodeState:
        """An empty decoder state for `batch_size` rows; `prefill_cross` fills it from the memory."""
        return RNNDecodeState()

    def decode_plan(self, source_padding: Tensor | None = None) -> RNNPlan:
        """The source's padding, kept for `decode_next` (a sum over the source must skip it)."""
        return RNNPlan(source_padding)

    @torch.no_grad()
    def decode_next(self, idx: Tensor, cache: RNNDecodeState, source_padding: Tensor | None = None,
                    plan: RNNPlan | None = None) -> Tensor:
        """Logits [B, V] for one new target token per row, idx [B, 1], after the tokens in `cache`.

        One step of the recurrence from the cached state s⟨t-1⟩ -- the same arithmetic as the teacher-forced
        `decode` at that position (a test holds them within 1e-5). Call `prefill_cross(memory, cache)` first.
        Generation's hot path: no hook points, as the transformers' `decode_next`.
        """
        batch, t = idx.shape
        if t != 1:
            raise ValueError(f"decode_next feeds exactly one token per sequence, got {t}")
        if cache.hidden is None:
            raise ValueError("the decoder state is empty; call prefill_cross(memory, cache) first")
        check_length(cache.length + 1, self.config.block_size, "translation")
        embedded = self.wte(idx[:, 0])  # E y⟨t-1⟩ [B, C]
        logits = self._step_logits(embedded, cache, source_padding)
        cache.length += 1
        return logits

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Count parameters (a tied wte/lm_head once); `exclude_embeddings` leaves out the token table."""
        total = sum(p.numel() for p in self.parameters())
        return total - self.wte.weight.numel() if exclude_embeddings else total

    def _initial_state(self, summary: Tensor) -> tuple[Tensor, Tensor | None]:
        """s⟨0⟩ = tanh(W_init summary) for each decoder layer [L, B, C]; an LSTM's cell starts at 0."""
        batch = summary.shape[0]
        hidden = torch.tanh(self.init_state(summary)).view(batch, self.config.n_layers, -1).transpose(0, 1)
        hidden = hidden.contiguous()
        return hidden, (torch.zeros_like(hidden) if self.cell_kind == "lstm" else None)


class FixedVectorDecoder(nn.Module):
    """rnn's decoder: s⟨t⟩ = GRU(s⟨t-1⟩, [E y⟨t-1⟩; c]), one torch RNN per layer, and the output layer W_o."""

    def __init__(self, kind: type[nn.RNNBase], dim: int, layers: int) -> None:
        super().__init__()
        self.hook_embed = HookPoint()
        self.layers = nn.ModuleList(kind(2 * dim if i == 0 else dim, dim, batch_first=True) for i in range(layers))
        self.out_proj = nn.Linear(3 * dim, dim)  # W_o [s; c; E y]
        self.hook_final = HookPoint()


class RNNEncoderDecoder(_Seq2SeqRNN):
    """The encoder-decoder without attention: the whole source squeezed into one vector c.

    Example:
        >>> config = ModelConfig(vocab_size=50, block_size=16, n_layers=1, n_heads=1, dim=32, pos="none")
        >>> model = RNNEncoderDecoder(config)
        >>> source, target = torch.randint(50, (2, 7)), torch.randint(50, (2, 5))   # [B=2, S=7], [B=2, T=5]
        >>> logits, loss = model(source, target, None, target)
        >>> logits.shape, model.encode(source).shape   # the memory is one vector per sentence: [B, 1, C]
        (torch.Size([2, 5, 50]), torch.Size([2, 1, 32]))

    Which of Cho's and Sutskever's wirings: both. c (the encoder's top layer's last state) seeds every
    decoder layer, s⟨0⟩ = tanh(W_init c) (Cho; Sutskever copied the state), and is concatenated to every
    decoder input and to the output layer's input (Cho), so the decoder need not carry it in s alone.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        dim = config.dim
        # a⟨t'⟩ = GRU(a⟨t'-1⟩, E x⟨t'⟩), left to right
        self.encoder = RNNEncoder(self.rnn_class, dim, self.encoder_layers, False, self.dropout_p)
        self.init_state = nn.Linear(dim, config.n_layers * dim)  # W_init
        self.decoder = FixedVectorDecoder(self.rnn_class, dim, config.n_layers)

    def encode(self, source: Tensor, source_padding: Tensor | None = None) -> Tensor:
        """The memory: c = a⟨S⟩, the top encoder layer's state after each row's last real token, [B, 1, C]."""
        _, final = self._run_encoder(source, source_padding)
        return self.encoder.hook_memory(final[-1].unsqueeze(1))  # [B, 1, C]: a source of one "token"

    def _layers(self, x: Tensor, hidden: Tensor, cell: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """x [B, T, ·] through every decoder layer from state (hidden, cell) [L, B, C]: (top outputs, new states)."""
        hiddens, cells = [], []
        for i, layer in enumerate(self.decoder.layers):
            if i and self.dropout_p > 0:
                x = F.dropout(x, self.dropout_p, self.training)
            state = hidden[i : i + 1] if cell is None else (hidden[i : i + 1], cell[i : i + 1])
            x, state = layer(x, state)
            h, c = state if isinstance(state, tuple) else (state, None)
            hiddens.append(h)
            cells.append(c)
        return x, torch.cat(hiddens), (torch.cat(cells) if cell is not None else None)

    def decode(self, target: Tensor, memory: Tensor, source_padding: Tensor | None = None, *,
               last_only: bool = False) -> Tensor:
        """Next-token logits [B, T, V] for target ids [B, T], teacher-forced: each layer's fused RNN over all of T."""
        batch, t = target.shape
        check_length(t, self.config.block_size, "translation")
        context = memory[:, 0]  # c [B, C]
        embedded = self.decoder.hook_embed(self._embed(target))  # E y⟨t-1⟩ for t = 1..T: [B, T, C]
        hidden, cell = self._initial_state(context)
        repeated = context.unsqueeze(1).expand(batch, t, context.shape[-1])  # c beside every input
        states, _, _ = self._layers(torch.cat([embedded, repeated], dim=-1), hidden, cell)
        if last_only:
            states, embedded, repeated = states[:, -1:], embedded[:, -1:], repeated[:, -1:]
        return self._output(states, repeated, embedded)  # [B, T, V]

    @torch.no_grad()
    def prefill_cross(self, memory: Tensor, cache: RNNDecodeState, plan: RNNPlan | None = None) -> None:
        """The decoder's starting state s⟨0⟩ and the context c it reads at every step, from the memory."""
        cache.context = memory[:, 0]
        cache.hidden, cache.cell = self._initial_state(cache.context)
        cache.length = 0

    def _step_logits(self, embedded: Tensor, cache: RNNDecodeState, source_padding: Tensor | None) -> Tensor:
        x = torch.cat([embedded, cache.context], dim=-1).unsqueeze(1)  # [B, 1, 2C]
        out, cache.hidden, cache.cell = self._layers(x, cache.hidden, cache.cell)  # the same RNNs, one step long
        return self._output(out[:, 0], cache.context, embedded, hooked=False)  # [B, V]


class Attention(nn.Module):
    """The score e⟨t,t'⟩ of decoder state s⟨t-1⟩ against every annotation a⟨t'⟩, its softmax α, and c⟨t⟩.

    The part of a score that depends on the source alone is computed once per source (`keys`):
    additive: U a (+ bias); dot: a itself; general: W_a a. Each step then costs one product per source token.
    `hook_pattern` is the hook point the weights α of the whole target pass through, [B, 1, T, S] (one
    "head", as a cross-attention head's pattern): RNNSearch.decode reruns the decoder with the α a hook gives.
    """

    def __init__(self, dim: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.W = nn.Linear(dim, dim, bias=False)  # W s⟨t-1⟩
            self.U = nn.Linear(dim, dim)  # U a⟨t'⟩ (+ b)
            self.v = nn.Linear(dim, 1, bias=False)  # vᵀ tanh(·)
        elif kind == "general":
            self.W_a = nn.Linear(dim, dim, bias=False)  # sᵀ W_a a
        self.hook_pattern = HookPoint()

    def keys(self, annotations: Tensor) -> Tensor:
        """What the score reads of a [B, S, C], once per source: [B, S, A]."""
        if self.kind == "additive":
            return self.U(annotations)
        return self.W_a(annotations) if self.kind == "general" else annotations

    def forward(self, query: Tensor, keys: Tensor, annotations: Tensor, source_padding: Tensor | None,
                weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(c⟨t⟩ [B, C], α⟨t,·⟩ [B, S]) for s⟨t-1⟩ = query [B, C]; `weights` given: c⟨t⟩ = Σ weights a (no score)."""
        if weights is None:
            if self.kind == "additive":
                scores = self.v(torch.tanh(self.W(query).unsqueeze(1) + keys)).squeeze(-1)  # e [B, S]
            else:
                scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # e = s · key [B, S]
            if source_padding is not None:
                scores = scores.masked_fill(source_padding, float("-inf"))  # exp(-inf) = 0: padding gets nothing
            weights = torch.softmax(scores.float(), dim=-1).to(annotations.dtype)  # α, each row sums to 1
        context = torch.bmm(weights.unsqueeze(1), annotations).squeeze(1)  # c = Σ_t' α a⟨t'⟩ [B, C]
        return context, weights


class AttentionDecoder(nn.Module):
    """rnn-attention's decoder: cells stepped by hand (c⟨t⟩ needs s⟨t-1⟩ first), the attention, W_o."""

    def __init__(self, cell: type[nn.RNNCellBase], dim: int, layers: int, kind: str) -> None:
        super().__init__()
        self.hook_embed = HookPoint()
        self.cross_attn = Attention(dim, kind)
        self.layers = nn.ModuleList(cell(2 * dim if i == 0 else dim, dim) for i in range(layers))
        self.out_proj = nn.Linear(3 * dim, dim)  # W_o [s; c; E y]
        self.hook_final = HookPoint()


class RNNSearch(_Seq2SeqRNN):
    """Bahdanau's encoder-decoder with attention: a bidirectional encoder, a context c⟨t⟩ per target token.

    Example:
        >>> config = ModelConfig(vocab_size=50, block_size=16, n_layers=1, n_heads=1, dim=32, pos="none")
        >>> model = RNNSearch(config)
        >>> source, target = torch.randint(50, (2, 7)), torch.randint(50, (2, 5))
        >>> model(source, target, None, target)[0].shape, model.attention_map(source, target).shape
        (torch.Size([2, 5, 50]), torch.Size([2, 5, 7]))

    Each direction has dim/2 units, so a⟨t'⟩ and s⟨t⟩ are both dim wide (Bahdanau had 2·1000 and 1000;
    equal widths make the dot score need no projection). s⟨0⟩ = tanh(W_init ←a⟨1⟩), the backward state at
    the first token, which has read the whole sentence (Bahdanau). The decoder is a stack of cells
    stepped by hand, since c⟨t⟩ needs s⟨t-1⟩ first: the query is the top layer's state, c⟨t⟩ enters the
    first layer. Luong's dot/general scores are taken against s⟨t-1⟩ too (Luong used s⟨t⟩).

    The hook point `decoder.cross_attn.hook_pattern` [B, 1, T, S] sees α of every step once the target is
    read; a hook that gives other weights (or edits them in place) makes `decode` run the decoder again
    with c⟨t⟩ = Σ α' a at every step, so patching or ablating α changes the states and the logits after it.
    """

    HOOK_NAMES = ("encoder.hook_embed", "encoder.hook_memory", "decoder.hook_embed",
                  "decoder.cross_attn.hook_pattern", "decoder.hook_final")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        dim = config.dim
        if dim % 2:
            raise UserError(f"rnn-attention splits --dim between two directions; give an even --dim, not {dim}")
        self.encoder = RNNEncoder(self.rnn_class, dim, self.encoder_layers, True, self.dropout_p)  # →a, ←a
        self.init_state = nn.Linear(dim // 2, config.n_layers * dim)  # W_init ←a⟨1⟩
        cell = nn.GRUCell if self.cell_kind == "gru" else nn.LSTMCell
        self.decoder = AttentionDecoder(cell, dim, config.n_layers, self.attention_kind)

    def encode(self, source: Tensor, source_padding: Tensor | None = None) -> Tensor:
        """The memory: the annotations a⟨t'⟩ = [→a⟨t'⟩; ←a⟨t'⟩] of the top encoder layer, [B, S, C] (0 on padding)."""
        annotations, _ = self._run_encoder(source, source_padding)
        return self.encoder.hook_memory(annotations)

    def _start(self, memory: Tensor, cache: RNNDecodeState) -> None:
        cache.annotations = memory
        cache.keys = self.decoder.cross_attn.keys(memory)  # once per source, not once per step
        cache.hidden, cache.cell = self._initial_state(memory[:, 0, memory.shape[-1] // 2:])  # from ←a⟨1⟩
        cache.length = 0

    def _step(self, embedded: Tensor, cache: RNNDecodeState, source_padding: Tensor | None,
              alpha: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One target token: (s⟨t⟩ of the top layer [B, C], c⟨t⟩ [B, C], α⟨t,·⟩ [B, S]); the state advances.

        `alpha` given: the context is Σ alpha a instead of the scores' softmax (a patched pattern)."""
        context, weights = self.decoder.cross_attn(cache.hidden[-1], cache.keys, cache.annotations, source_padding,
                                                   alpha)
        x = torch.cat([embedded, context], dim=-1)  # [E y⟨t-1⟩; c⟨t⟩]
        hidden, cells = [], []
        for i, layer in enumerate(self.decoder.layers):
            if cache.cell is None:
                h = layer(x, cache.hidden[i])
            else:
                h, c = layer(x, (cache.hidden[i], cache.cell[i]))
                cells.append(c)
            hidden.append(h)
            x = F.dropout(h, self.dropout_p, self.training) if self.dropout_p > 0 else h
        cache.hidden = torch.stack(hidden)
        cache.cell = torch.stack(cells) if cells else None
        return hidden[-1], context, weights

    def _teacher_forced(self, embedded: Tensor, memory: Tensor, source_padding: Tensor | None,
                        pattern: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(s⟨t⟩ [B, T, C], c⟨t⟩ [B, T, C], α [B, T, S]) over every target position; `pattern` [B, T, S]: α given."""
        state = RNNDecodeState()
        self._start(memory, state)
        tops, contexts, weights = [], [], []
        for step in range(embedded.shape[1]):
            given = None if pattern is None else pattern[:, step]
            top, context, alpha = self._step(embedded[:, step], state, source_padding, given)
            tops.append(top)
            contexts.append(context)
            weights.append(alpha)
        return torch.stack(tops, dim=1), torch.stack(contexts, dim=1), torch.stack(weights, dim=1)

    def decode(self, target: Tensor, memory: Tensor, source_padding: Tensor | None = None, *,
               last_only: bool = False) -> Tensor:
        """Next-token logits [B, T, V] for target ids [B, T], teacher-forced: the cells stepped over T."""
        check_length(target.shape[1], self.config.block_size, "translation")
        embedded = self.decoder.hook_embed(self._embed(target))  # E y⟨t-1⟩ [B, T, C]
        states, context, alpha = self._teacher_forced(embedded, memory, source_padding)
        point = self.decoder.cross_attn.hook_pattern
        if point.active:  # hooks read α [B, 1, T, S]; one that changes it gets the decoder rerun with its α
            pattern = alpha.unsqueeze(1)
            before = pattern.clone()
            given = point(pattern)
            if given is not pattern or not torch.equal(given, before):
                states, context, _ = self._teacher_forced(embedded, memory, source_padding, given[:, 0])
        if last_only:
            states, context, embedded = states[:, -1:], context[:, -1:], embedded[:, -1:]
        return self._output(states, context, embedded)

    @torch.no_grad()
    def attention_map(self, source: Tensor, target: Tensor, source_padding: Tensor | None = None) -> Tensor:
        """α [B, T, S]: how much target step t (writing y⟨t⟩, having read target[:, t]) read source token t'."""
        name = "decoder.cross_attn.hook_pattern"
        _, cache = self.run_with_cache(source, target, source_padding, names=[name], stop_at=name)
        return cache[name][:, 0]

    @torch.no_grad()
    def prefill_cross(self, memory: Tensor, cache: RNNDecodeState, plan: RNNPlan | None = None) -> None:
        """The annotations, their keys (made once here) and the starting state s⟨0⟩, into the cache."""
        self._start(memory, cache)

    def _step_logits(self, embedded: Tensor, cache: RNNDecodeState, source_padding: Tensor | None) -> Tensor:
        top, context, _ = self._step(embedded, cache, source_padding)
        return self._output(top, context, embedded, hooked=False)


# -- the answers the rest of minitx asks (model/architecture.py) --------------------------------------------

class _RecurrentArchitecture(Architecture):
    """What both recurrent translators answer alike; each subclass names its class, stacks and commands.

    Positions: an RNN has none; it reads its tokens in order. Its presets say `pos: none`, and the model
    never reads `config.pos` (`model.positions` is NoPositions whatever it says), so the positional checks
    (`registry.check_model_config`, the kind's `check_config`) see "none" from a preset, which takes any
    shape; a `--pos` given by hand is checked as for a transformer, saved, and unused. `n_heads` is unused
    too (the one attention is drawn as one head).
    """

    transformer_flops = False  # MFU's formula counts a transformer's matmuls; the view shows none
    reads_source = True
    use_instead = 'minitx translate RUN "The red ball is big."'
    next_steps = 'minitx translate {run} "The red ball is big."    minitx eval {run}'
    hf_families = ()
    hf_refusal = "transformers has no RNN encoder-decoder that minitx can write; export works on a decoder-only run"

    def shape(self, config: ModelConfig) -> str:
        """"encoder 1 + decoder 1 layers of gru × 128 wide, block 64, attention additive"."""
        score = f", attention {config.attention}" if any(s.attention for s in self.stacks) else ""
        return (f"encoder {config.encoder_layers or config.n_layers} + decoder {config.n_layers} layers of "
                f"{config.cell} × {config.dim} wide, block {config.block_size}{score}")

    def block_counts(self, config: ModelConfig) -> tuple[int, int]:
        """For model/memory.py's lower bounds: a GRU layer has ≥ 4.5·C² weights and keeps ≥ 5·C numbers per
        token, a third of a transformer block's 12·C² and 20·C, so every four recurrent layers count as one
        block (counting each as a block would over-estimate, and a refusal must never be wrong)."""
        return ((config.encoder_layers or config.n_layers) + config.n_layers) // 4, 0


class RNNArchitecture(_RecurrentArchitecture):
    """rnn: the encoder's last state is all the decoder gets (RNNEncoderDecoder)."""

    name = "rnn"
    preset = "translate-rnn"
    model_class = RNNEncoderDecoder
    description = "RNN encoder-decoder (Cho, Sutskever 2014): the source in one fixed vector, then translated"
    label = "an RNN encoder-decoder (rnn)"
    noun = "an RNN encoder-decoder"
    # left to right: a⟨t'⟩ has read x⟨1..t'⟩ only; no attention anywhere
    stacks = (Stack("encoder", "encoder.layers", None, (), causal=True),
              Stack("decoder", "decoder.layers", None, (), causal=True))
    commands = frozenset({"translate", "eval", "experiment attention"})


class RNNSearchArchitecture(_RecurrentArchitecture):
    """rnn-attention: Bahdanau's RNNSearch; its one attention is the decoder's `cross_attn` (one head)."""

    name = "rnn-attention"
    preset = "translate-rnn-attention"
    model_class = RNNSearch
    description = "RNN encoder-decoder with attention (Bahdanau 2015): c⟨t⟩ = Σ α a at every target step"
    label = "an RNN with attention (rnn-attention)"
    noun = "an RNN encoder-decoder"
    # a bidirectional encoder (each a⟨t'⟩ has read the whole source); the decoder's cells carry no attention
    # of their own: the one attention is `decoder.cross_attn`, read before the first layer at every step
    stacks = (Stack("encoder", "encoder.layers", None, (), causal=False),
              Stack("decoder", "decoder.layers", None, (), causal=True))
    commands = frozenset({"translate", "eval", "inspect-attention", "experiment attention"})
