"""Following a sample's text token by token: stop strings and streaming without half characters.

Tokens are not characters. With byte-level BPE one token can end in the middle of a multi-byte
character (an emoji is 4 bytes, maybe 2 tokens); decoding such a prefix gives U+FFFD "�" where the
rest is still missing. So text is shown only once it can no longer change:

  * not ending in U+FFFD -- the character's remaining bytes may still come;
  * not ending in what may become a stop string -- "\\n" could be the start of a "\\n\\n" stop, and
    a stop string and everything after it are cut from the sample.

The streamed pieces add up exactly to the final text.

Decoding stays linear in the sample's length: the text of the tokens up to the last whole
character never changes again, so only the tokens after that point are decoded anew each step
(usually just the newest one), and stop strings are searched for only where a new one can end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT_CHAR = "\ufffd"  # what decoding shows for bytes that are not (yet) a whole character


class StopAndStream:
    """Follows one sample's text as its tokens arrive: ends it at a stop string, hands out final text.

    `decode(ids)` must be a tokenizer's decode: the text of ids a + b is the text of a followed by
    the text of b whenever a ends on a whole character (true of byte-level BPE and of characters).
    Text goes to `emit` only once it can no longer change -- see `stable_length` -- so the
    emitted pieces add up exactly to `text`.

    Example with stop=["\\n\\n"]: tokens "Once", " upon", "\\n", "\\n" emit "Once", " upon" and
    nothing more ("\\n" might start the stop string, and it does); `text` is "Once upon".
    """

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        stop: Sequence[str] = (),
        emit: Callable[[str], None] | None = None,
    ) -> None:
        self.decode = decode
        self.stop = list(stop)
        self.emit = emit
        self.ids: list[int] = []
        self.text = ""  # the sample's text so far (final once `finished`)
        self.shown = 0  # characters of `text` already given to `emit`
        self.finished = False
        self._settled = ""  # text of ids[:_settled_ids]: ends on a whole character, final
        self._settled_ids = 0
        self._longest_stop = max((len(s) for s in self.stop), default=0)

    def add(self, token_id: int) -> bool:
        """Take the sample's next token; return True if the sample has now ended at a stop string."""
        self.ids.append(token_id)
        # A stop string not found before must end in the unsettled part: start looking just before it.
        search_from = max(0, len(self._settled) - self._longest_stop + 1)
        tail = self.decode(self.ids[self._settled_ids :])
        self.text = self._settled + tail
        if not tail.endswith(REPLACEMENT_CHAR):  # a whole-character boundary: nothing before it changes now
            self._settled, self._settled_ids = self.text, len(self.ids)
        cut = find_stop(self.text, self.stop, search_from)
        if cut is not None:
            self.text = self.text[:cut]
            self.finished = True
            self._show(len(self.text))
        else:
            self._show(stable_length(self.text, self.stop))
        return self.finished

    def close(self) -> str:
        """No more tokens will come: hand out whatever was held back and return the final text."""
        self._show(len(self.text))
        return self.text

    def _show(self, end: int) -> None:
        if self.emit is not None and end > self.shown:
            self.emit(self.text[self.shown : end])
            self.shown = end


def find_stop(text: str, stop: Sequence[str], start: int = 0) -> int | None:
    """Index of the earliest stop string in text[start:], or None. find_stop("ab.cd", [".", "c"]) == 2."""
    found = [i for i in (text.find(s, start) for s in stop) if i >= 0]
    return min(found) if found else None


def stable_length(text: str, stop: Sequence[str]) -> int:
    """How much of `text` can no longer change as more tokens arrive.

    Held back: trailing U+FFFD (a character whose remaining bytes may still come) and the longest
    end of the text that is the beginning of a stop string (it may become the stop and be cut).
    Example: stable_length("Hi\\n", ["\\n\\n"]) == 2; stable_length("ok\\ufffd", []) == 2.
    """
    end = len(text)
    while end and text[end - 1] == REPLACEMENT_CHAR:
        end -= 1
    held = 0
    for s in stop:
        for k in range(min(len(s) - 1, end), held, -1):  # longest proper prefix of s ending the text
            if text.startswith(s[:k], end - k):
                held = k
                break
    return end - held
