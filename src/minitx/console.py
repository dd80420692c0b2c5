"""How text from users and files reaches the terminal: as text, never as rich markup.

rich reads `[bold]`, `[/]` or `[link=...]` inside a string as markup: a sentence with `[/]` in it
raises MarkupError, one with `[bold]` loses that word. Any string that did not come from minitx's own
source code -- a sentence of a corpus, a path, a prompt, a token, a corpus name -- goes through
`safe()` before it is put into a string rich will render (a `print`, a table cell, a title):

    >>> safe("The dog [/] runs [bold]fast")
    'The dog \\\\[/] runs \\\\[bold]fast'

(A `rich.text.Text` built from the string is safe too: Text is never parsed as markup.)
"""

from __future__ import annotations


def safe(value: object) -> str:
    """`value` as a string in which rich sees no markup: every `[` that could open a tag is escaped."""
    from rich.markup import escape

    return escape(str(value))
