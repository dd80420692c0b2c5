"""How text from users and files reaches the terminal: as text, never as markup or terminal commands.

Two things can go wrong when a string that did not come from minitx's own source code -- a sentence
of a corpus, a path, a prompt, a token, a corpus name, a field of config.json -- is printed:

- rich reads `[bold]`, `[/]` or `[link=...]` inside it as markup: a sentence with `[/]` raises
  MarkupError, one with `[bold]` loses that word;
- the terminal reads control characters inside it as commands: ESC starts an escape sequence
  (`\\x1b[31m` turns the rest of the screen red, `\\x1b]0;...` retitles the window, `\\x1b[2J` clears
  it), other C0 and C1 controls move the cursor or ring the bell, and the bidi overrides U+202A-202E
  and U+2066-2069 reorder what follows so that a line reads differently from what it holds.

`printable()` shows every such character escaped, as Python writes it (`\\x1b`, `\\x9b`, `\\u202e`),
keeping newline and tab (`one_line=True` escapes those too: an error line is one line). `safe()` does
that and escapes rich markup; every string from a user or a file goes through one of the two before
it is printed -- `safe` where rich renders it, `printable` where it is written as plain text:

    >>> safe("The dog [/] runs [bold]fast")
    'The dog \\\\[/] runs \\\\[bold]fast'
    >>> printable("\\x1b[31mred\\u202e")
    '\\\\x1b[31mred\\\\u202e'

(A `rich.text.Text` built from the string is safe from markup but not from control characters: build
it from `printable(value)`.)
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, one_line: bool = False) -> str:
    """`value` as a string whose control characters are shown escaped (`\\x1b`), never sent to the terminal.

    Tab and newline stay, unless `one_line` (an error line, a table cell): then they are `\\t`, `\\n`.
    """
    return (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_escape, str(value))


def safe(value: object, one_line: bool = False) -> str:
    """`value` as a string in which rich sees no markup and the terminal no control character."""
    from rich.markup import escape

    return escape(printable(value, one_line))


def error_line(message: object) -> str:
    """The one line `minitx: error: ...` says on stderr, control characters escaped (cli.py prints it)."""
    return "minitx: error: " + printable(message, one_line=True)
