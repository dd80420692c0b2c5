"""Seeing tokens: how a tokenizer cuts text, drawn in the terminal.

Token ids alone hide where one token ends and the next begins. `render_tokens` draws each token as
its own coloured span (neighbours get different backgrounds), makes whitespace visible, and prints
the ids underneath in the colour of their token. Without colours a separator marks the boundaries;
a small BPE trained on the built-in stories shows "<|doc|>The cat sat.\n" as

    <|doc|>|The|·c|at|·s|at|.|↵
    0 261 273 272 260 272 14 199

Presentation only: the ids come from `Tokenizer.encode`, the text of each id from `id_to_token_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType

    from minitx.text.tokenizer import Tokenizer

# Light and mid tones alternate, so neighbours differ even where a terminal has only 16 colours.
_BACKGROUNDS = ("#cfe2ff", "#d7af87", "#d4f4dd", "#d7afd7")
_SPECIAL_STYLE = "bold white on #7b3294"
_VISIBLE_WHITESPACE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def render_tokens(tok: Tokenizer, text: str, show_ids: bool = True, separator: str = "") -> RenderableType:
    """A rich renderable showing how `tok` cuts `text`: one coloured span per token, then the ids.

    `separator` is drawn between tokens (the CLI uses "|" where colours cannot be shown).

    Spans alternate background colours so token boundaries are visible; whitespace is drawn as
    · (space), → (tab), ␍ (carriage return) and ↵ (newline, followed by a real line break), other
    invisible characters as escapes like \\x07. Each id is coloured like its token.
    """
    from rich.console import Group
    from rich.text import Text

    ids = tok.encode(text)
    special_ids = {tok.token_id(token) for token in tok.special_tokens}
    spans, id_line = Text(), Text()
    for n, i in enumerate(ids):
        is_special = i in special_ids
        style = _SPECIAL_STYLE if is_special else f"black on {_BACKGROUNDS[n % len(_BACKGROUNDS)]}"
        if separator and n:
            spans.append(separator, style="dim")
        for char in tok.id_to_token_text(i):
            if char in _VISIBLE_WHITESPACE:
                spans.append(_VISIBLE_WHITESPACE[char], style=f"{style} dim" if not is_special else style)
            elif not char.isprintable():
                spans.append(char.encode("unicode_escape").decode("ascii"), style=style)
            else:
                spans.append(char, style=style)
            if char == "\n":
                spans.append("\n")
        id_line.append(str(i), style=style)
        id_line.append(" ")
    n_bytes = len(text.encode("utf-8"))
    footer = Text(
        f"{len(ids)} tokens, {n_bytes} bytes, {n_bytes / max(1, len(ids)):.2f} bytes/token "
        f"({tok.kind}, vocabulary {tok.vocab_size})",
        style="italic",
    )
    parts = [spans, Text(), id_line] if show_ids else [spans]
    return Group(*parts, footer)
