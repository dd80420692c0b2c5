"""How text becomes a model's inputs: each rule written once, for every architecture and every room.

A model that reads token windows (the GPT) sees documents; one that reads a source sentence (the
encoder-decoder) sees a source and the translation written so far. The rules:

    document_ids("The dog runs.")      <|doc|> The dog runs.          a document starts with <|doc|> (once)
    encode_sources(["The dog runs."])  The dog runs. <|doc|>          a source ends with the end token
    decoder_ids("El perro")            <|doc|> El perro                the decoder starts from the end token
    pad_rows([[5, 6, 0], [7, 0]])      [[5, 6, 0], [7, 0, 0]] + mask  right-padded; True on padding

`<|doc|>` (`text.special.DOC_TOKEN`) is both the document marker and the end token of a translation:
one token starts and ends every target and ends every source (docs/encoder-decoder.md). Which rules an
architecture uses is its answer `reads_source` (model/architecture.py); generation, training data,
evaluation and inspection all call these functions, so a message about an empty or too long sentence
reads the same everywhere.

    >>> from minitx.text.tokenizer import Tokenizer
    >>> tokenizer = Tokenizer.train_char("abc")
    >>> doc = end_token(tokenizer)
    >>> document_ids(tokenizer, "ab") == [doc, *tokenizer.encode("ab")]
    True
    >>> encode_sources(tokenizer, ["ab"], block_size=8) == [[*tokenizer.encode("ab"), doc]]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    from minitx.text.tokenizer import Tokenizer


def document_start(tokenizer: Tokenizer) -> int | None:
    """The id that starts every document (<|doc|>), or None for a tokenizer that does not know it."""
    return tokenizer.token_id(DOC_TOKEN)


def document_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """`text` as a document starts: <|doc|> in front when the tokenizer knows it, once (not twice when the
    text already begins with it), as every training document did."""
    ids = tokenizer.encode(text)
    doc = document_start(tokenizer)
    if doc is not None and (not ids or ids[0] != doc):
        ids = [doc, *ids]
    return ids


def end_token(tokenizer: Tokenizer, fix: str = "") -> int:
    """The id that ends a source and starts and ends a translation (<|doc|>); a UserError when the tokenizer has
    none (`fix` is appended to it: what the user can do)."""
    found = tokenizer.token_id(DOC_TOKEN)
    if found is None:
        raise UserError(f"the tokenizer has no {DOC_TOKEN} token to start and end translations{fix}")
    return found


def encode_sources(tokenizer: Tokenizer, sentences: Sequence[str], block_size: int, *,
                   names: Sequence[str] | None = None, end: bool = True) -> list[list[int]]:
    """Each sentence as an encoder reads it: its ids, then the end token (`end=False`: without it, checked all the
    same). An empty sentence or one whose ids and end token pass the block is a UserError naming it (`names[i]`,
    default "sentence i+1")."""
    encoded = tokenizer.encode_pieces([s.strip() for s in sentences])
    names = names if names is not None else [f"sentence {n}" for n in range(1, len(sentences) + 1)]
    boundary = end_token(tokenizer)
    for name, sentence, ids in zip(names, sentences, encoded, strict=True):
        if not ids:
            raise UserError(f"{name} is empty; give a sentence")
        if len(ids) + 1 > block_size:  # + the end token
            raise UserError(f"{name} is {len(ids)} tokens long but the model reads at most {block_size - 1} per "
                            f"sentence (its block size, less the end token); shorten or split it: "
                            f"{sentence.strip()[:60]!r}")
    return [[*ids, boundary] if end else ids for ids in encoded]


def encode_source(tokenizer: Tokenizer, sentence: str, block_size: int, name: str = "--source") -> list[int]:
    """One source sentence as the encoder reads it (`encode_sources`), errors naming `name`."""
    return encode_sources(tokenizer, [sentence], block_size, names=[name])[0]


def decoder_ids(tokenizer: Tokenizer, prefix: str, block_size: int) -> list[int]:
    """The decoder's input for a translation written so far: the start (end) token, then `prefix`'s ids."""
    ids = [end_token(tokenizer), *(tokenizer.encode(prefix.strip()) if prefix.strip() else [])]
    if len(ids) > block_size:
        raise UserError(f"the translation so far is {len(ids)} tokens with the start token, but this model reads at "
                        f"most {block_size}; shorten it")
    return ids


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int = 0, width: int | None = None) -> tuple[Tensor, Tensor]:
    """Rows of ids right-padded with `pad_id` to the longest (or to `width`): (ids [B, S], padding [B, S] True on
    padding). Real tokens keep positions 0..n-1; a mask built from `padding` hides the rest.

        >>> pad_rows([[5, 6, 0], [7, 0]])
        (tensor([[5, 6, 0],
                [7, 0, 0]]), tensor([[False, False, False],
                [False, False,  True]]))
    """
    longest = max(max(len(row) for row in rows), width or 0)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    padding = torch.ones(len(rows), longest, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        padding[i, : len(row)] = False
    return ids, padding
