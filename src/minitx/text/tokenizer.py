"""Tokenizers: turning text into the integer ids a language model reads, and back.

A model never sees characters, only ids from a fixed vocabulary. Two ways to build one live here,
behind one `Tokenizer` class so every later command treats them alike:

* **char** -- every distinct character (Unicode code point) of the training text gets an id.
  Simple and transparent, but a sequence is as long as the text.
* **bpe** -- byte-level byte-pair encoding. Start from the 256 byte values, then repeatedly merge
  the most frequent adjacent pair into a new token until the vocabulary is full:

      "aaabdaaabac"  merge (a, a) -> Z  "ZabdZabac"  merge (Z, a) -> Y  "YbdYbac"  ...

  Because every string is a sequence of UTF-8 bytes and all 256 bytes are in the vocabulary,
  any text can be encoded -- emoji, CJK, control characters -- even if training never saw it.

Special tokens such as `DOC_TOKEN` are never split: wherever their exact text occurs it becomes
one id, and decoding gives the same text back, so `decode(encode(s)) == s` for every `s`.
The one exception is a Python str that is not valid Unicode text (it contains a lone surrogate
such as "\\ud800"): it has no UTF-8 bytes, so `encode` refuses it with a `UserError`.

Both kinds are saved as a Hugging Face `tokenizers` JSON file (`tokenizer.json`), which that
library can load by itself too. The file's model type records the kind: "BPE" is bpe,
"WordLevel" (one word per character) is char.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from minitx.errors import UserError, require_file
from minitx.fileio import atomic_write_text
from minitx.text.files import read_text_file
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    import tokenizers

#: Where text may be cut without changing how byte-level BPE splits it into words: after a lone
#: newline that sits between two non-space characters ("...the end.\nNext..."), or before a
#: Windows line end "\r\n" between two ("...the end.|\r\nNext..."; cutting after it would turn
#: the two words "\r", "\n" into one). The words on either side are the same whether or not the
#: text is cut there, so the pieces can be encoded in parallel and the ids concatenated.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)|(?<=\S)(?=\r\n\S)")
_CHUNK_CHARS = 1 << 15


def _byte_of_stand_in() -> dict[str, int]:
    """Map the 256 printable characters byte-level BPE uses for bytes back to those bytes.

    BPE vocabularies are stored as text, so each byte b is written as one printable character:
    printable Latin-1 bytes stand for themselves, the 68 others (controls, space, 0x7F-0xA0, 0xAD)
    take the characters from U+0100 upward in byte order. E.g. "a" -> b"a", "Ġ" -> b" ", "Ċ" -> b"\\n".
    """
    printable = [*range(0x21, 0x7E + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    stand_in = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in stand_in):
        stand_in[b] = chr(0x100 + n)
    return {char: b for b, char in stand_in.items()}


_BYTE_OF_STAND_IN = _byte_of_stand_in()


def _require_unicode_text(text: str, what: str = "text") -> int:
    """Return the UTF-8 length of `text`; raise a UserError if it holds a lone surrogate."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise UserError(
            f"{what} contains a lone surrogate {bad!r} (U+{ord(bad):04X}) at index {err.start}, which is "
            "not valid Unicode text; remove it or decode the source with errors='replace'"
        ) from None


def _special_token_pattern(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    """A regex that finds special tokens, longest first, e.g. "(<\\|doc\\|>)"; it captures them."""
    alternatives = sorted(special_tokens, key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, alternatives)) + ")") if alternatives else None


def _without_special_tokens(text: str, pattern: re.Pattern[str] | None) -> list[str]:
    """The plain text between special tokens: "a<|doc|>b" -> ["a", "b"]."""
    return pattern.split(text)[::2] if pattern else [text]


def _check_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    tokens = list(special_tokens)
    if any(not isinstance(s, str) or not s for s in tokens):
        raise UserError(f"special tokens must be non-empty strings, got {tokens!r}")
    if len(set(tokens)) != len(tokens):
        raise UserError(f"special tokens must be distinct, got {tokens!r}")
    return tokens


def _cut_into_chunks(text: str, chunk_chars: int | None = None) -> list[str]:
    """Cut `text` at safe places (see `_SAFE_CUT`) into pieces of roughly `chunk_chars` characters.

    "a.\\nb.\\nc." with chunk_chars=2 -> ["a.\\n", "b.\\n", "c."]; "".join(pieces) == text always.
    """
    chunk_chars = chunk_chars or _CHUNK_CHARS
    pieces, start = [], 0
    while len(text) - start > chunk_chars:
        cut = _SAFE_CUT.search(text, start + chunk_chars)
        if cut is None:
            break
        pieces.append(text[start : cut.start()])
        start = cut.start()
    pieces.append(text[start:])
    return pieces


def safe_pieces(text: str, special_tokens: Sequence[str], chunk_chars: int | None = None) -> list[str]:
    """`text` cut where byte-level BPE (or a char tokenizer) with these special tokens encodes piece by piece
    exactly as it encodes the whole: "".join(pieces) == text, and the ids of the pieces concatenate to the ids
    of the text.

    A text read in blocks is only known to be cut safely before its last piece: a streaming reader encodes
    all pieces but the last and carries that one into the next block. With a special token that contains
    a newline no place is safe: one piece, the whole text. Pieces are about `chunk_chars` long (default 32K).
    """
    return [text] if any("\n" in s for s in special_tokens) else _cut_into_chunks(text, chunk_chars)


def _training_texts(texts: Iterable[str] | None, files: list[Path] | None) -> Iterator[str]:
    """The texts, then each file's text; read lazily, so `texts` may stream a corpus of any size."""
    yield from texts or ()
    for path in files or []:
        yield read_text_file(Path(path))


class Tokenizer:
    """Text <-> ids, byte-level BPE or per character; build one with `train_bpe`, `train_char`, `load`.

    >>> tok = Tokenizer.train_char("<|doc|>abba\\n")
    >>> tok.encode("<|doc|>ab"), tok.decode([0, 2, 3])
    ([0, 2, 3], '<|doc|>ab')
    """

    kind: str  # "bpe" | "char"
    vocab_size: int
    special_tokens: list[str]

    def __init__(self, hf: tokenizers.Tokenizer) -> None:
        """Wrap a Hugging Face tokenizer built by minitx (use the classmethods, not this)."""
        self._hf = hf
        self.kind = "bpe" if type(hf.model).__name__ == "BPE" else "char"  # else WordLevel
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
        added = sorted(hf.get_added_tokens_decoder().items())
        self.special_tokens = [token.content for _, token in added if token.special]
        self._special_pattern = _special_token_pattern(self.special_tokens)
        # Cutting text at newlines is only safe if no special token spans a newline.
        self._can_cut = not any("\n" in s for s in self.special_tokens)
        vocab = hf.get_vocab(with_added_tokens=True)
        self._special_to_id = {token: vocab[token] for token in self.special_tokens}
        # The char kind encodes with a plain dict, far faster than a per-character HF pre-tokenizer
        # (docs/decisions.md).
        chars = {t: i for t, i in vocab.items() if t not in self._special_to_id}
        self._char_to_id = chars if self.kind == "char" else {}
        self._text_of_id = [""] * self.vocab_size  # id -> vocabulary entry (bpe: bytes as stand-ins)
        for token, i in vocab.items():
            self._text_of_id[i] = token

    # ----------------------------------------------------------------------------------- training
    @classmethod
    def train_bpe(
        cls,
        texts: Iterable[str] | None = None,
        *,
        files: list[Path] | None = None,
        vocab_size: int,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = (DOC_TOKEN,),
        show_progress: bool = True,
    ) -> Tokenizer:
        """Learn byte-level BPE merges from `texts` and/or `files` until there are `vocab_size` tokens.

        The vocabulary is: the special tokens (ids 0, 1, ...), the 256 bytes, then the merges in the
        order they were learned. Pairs seen fewer than `min_frequency` times are never merged, so a
        small corpus can end with fewer than `vocab_size` tokens.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        special_tokens = _check_special_tokens(special_tokens)
        minimum = 256 + len(special_tokens)
        if vocab_size < minimum:
            raise UserError(
                f"--vocab-size {vocab_size} is too small: byte-level BPE needs at least {minimum} "
                f"(256 bytes + {len(special_tokens)} special tokens)"
            )
        if min_frequency < 1:
            raise UserError(f"--min-frequency must be at least 1, got {min_frequency}")

        hf = HFTokenizer(models.BPE())
        # No normalizer and no prefix space: both would change the text, breaking the round trip.
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=special_tokens,
            # Without this, bytes absent from the corpus would be missing and silently dropped later.
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        # Special tokens are cut out first (no merges are wasted on "<|" + "doc" ...), and long texts
        # are cut at safe newlines so the trainer can count words on all cores. The pieces are made
        # as the trainer asks for them: a streamed corpus is never held whole.
        pattern = _special_token_pattern(special_tokens)
        chars_seen = 0

        def pieces() -> Iterator[str]:
            nonlocal chars_seen
            for text in _training_texts(texts, files):
                _require_unicode_text(text, "the training text")
                for part in _without_special_tokens(text, pattern):
                    for chunk in _cut_into_chunks(part):
                        chars_seen += len(chunk)
                        yield chunk

        hf.train_from_iterator(pieces(), trainer=trainer)
        if not chars_seen:
            raise UserError("the training text is empty; pass a corpus with some text in it")
        return cls(hf)

    @classmethod
    def train_char(cls, text: str | Iterable[str], special_tokens: Sequence[str] = (DOC_TOKEN,)) -> Tokenizer:
        """One id per distinct character of `text` (a string, or the blocks of a streamed corpus), after the
        special tokens.

        Ids are deterministic: special tokens first, then the characters in code-point order.
        Characters that only occur inside special tokens are not in the vocabulary.
        "<|doc|>ba\\n" -> {"<|doc|>": 0, "\\n": 1, "a": 2, "b": 3}. (A streamed corpus must be cut
        outside special tokens, as `safe_pieces` cuts it.)
        """
        from tokenizers import Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        special_tokens = _check_special_tokens(special_tokens)
        pattern = _special_token_pattern(special_tokens)
        chars: set[str] = set()
        for block in [text] if isinstance(text, str) else text:
            _require_unicode_text(block, "the training text")
            chars.update(*map(set, _without_special_tokens(block, pattern)))
        if not chars:
            raise UserError("the training text has no characters besides special tokens; pass more text")
        vocab = {token: i for i, token in enumerate([*special_tokens, *sorted(chars)])}
        # The same pipeline in HF terms: split into single characters, look each up, glue back together.
        # No unk token: HF too refuses unknown characters instead of dropping them.
        hf = HFTokenizer(models.WordLevel(vocab=vocab, unk_token=None))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()
        hf.add_special_tokens(special_tokens)
        return cls(hf)

    # ----------------------------------------------------------------------------- saving/loading
    def to_json_str(self) -> str:
        """The tokenizer.json text (Hugging Face `tokenizers` format)."""
        return self._hf.to_str(pretty=True)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically: a crash leaves the old file or the new one, never half."""
        atomic_write_text(path, self.to_json_str() + "\n")

    @classmethod
    def from_json_str(cls, s: str, source: str = "tokenizer JSON") -> Tokenizer:
        """Rebuild a tokenizer from `to_json_str` text; UserError if it is not a minitx tokenizer."""
        from tokenizers import Tokenizer as HFTokenizer

        try:
            spec = json.loads(s)
        except json.JSONDecodeError as err:
            raise UserError(f"{source} is not valid JSON ({err.msg} at line {err.lineno}); retrain it") from None
        expected = {
            "BPE": ({"type": "ByteLevel", "add_prefix_space": False}, "ByteLevel"),
            "WordLevel": ({"type": "Split"}, "Fuse"),
        }
        try:
            pre_tokenizer, decoder = expected[spec["model"]["type"]]
            ours = spec["normalizer"] is None and spec["decoder"]["type"] == decoder
            ours = ours and pre_tokenizer.items() <= spec["pre_tokenizer"].items()
        except (KeyError, TypeError, AttributeError):
            ours = False
        if not ours:
            raise UserError(f"{source} is not a minitx tokenizer file; create one with `minitx tokenize train`")
        try:
            return cls(HFTokenizer.from_str(s))
        except Exception as err:  # tokenizers raises a bare Exception for malformed files
            raise UserError(f"{source} is a damaged tokenizer file ({err}); retrain it") from None

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer.json written by `save`; UserError if it is missing or not a tokenizer."""
        path = require_file(path, "tokenizer file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a tokenizer file (not UTF-8 text); pass a tokenizer.json") from None
        return cls.from_json_str(text, source=str(path))

    # --------------------------------------------------------------------------- encoding/decoding
    def encode(self, text: str) -> list[int]:
        """Text -> ids. "<|doc|>" anywhere in `text` becomes the one id of that special token.

        bpe: never fails on valid text. char: a character missing from the vocabulary is a UserError.
        """
        _require_unicode_text(text)
        if self.kind == "char":
            return self._encode_chars(text)
        chunks = _cut_into_chunks(text) if self._can_cut else [text]
        encodings = self._hf.encode_batch_fast(chunks, add_special_tokens=False)
        return [i for encoding in encodings for i in encoding.ids]

    def _encode_chars(self, text: str) -> list[int]:
        # re.split with a capturing group alternates [plain, special, plain, special, ..., plain].
        parts = self._special_pattern.split(text) if self._special_pattern else [text]
        ids: list[int] = []
        for n, part in enumerate(parts):
            if n % 2:
                ids.append(self._special_to_id[part])
                continue
            try:
                ids.extend([self._char_to_id[char] for char in part])
            except KeyError as err:
                char = err.args[0]
                raise UserError(
                    f"character {char!r} (U+{ord(char):04X}) is not in this char tokenizer's vocabulary; "
                    "retrain the tokenizer on text that contains it"
                ) from None
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; the exact inverse of `encode`.

        bpe: ids that split a multi-byte character (e.g. the first half of an emoji) decode to "\\ufffd".
        """
        ids = list(ids)
        if ids and not 0 <= min(ids) <= max(ids) < self.vocab_size:
            bad = next(i for i in ids if not 0 <= i < self.vocab_size)
            raise ValueError(f"token id {bad} is outside the vocabulary (0..{self.vocab_size - 1})")
        if self.kind == "char":
            return "".join([self._text_of_id[i] for i in ids])
        return self._hf.decode(ids, skip_special_tokens=False)  # the default would drop "<|doc|>"

    # ------------------------------------------------------------------------------ streaming
    def safe_pieces(self, text: str) -> list[str]:
        """`text` cut where encoding piece by piece gives the ids of encoding it whole (see `safe_pieces`)."""
        return safe_pieces(text, self.special_tokens)

    def encode_pieces(self, pieces: Sequence[str]) -> list[list[int]]:
        """The ids of each piece of valid Unicode text (bpe: encoded together on all cores, in Rust)."""
        if self.kind == "char":
            return [self._encode_chars(piece) for piece in pieces]
        return [encoding.ids for encoding in self._hf.encode_batch_fast(list(pieces), add_special_tokens=False)]

    # ------------------------------------------------------------------------------ single tokens
    def token_id(self, token: str) -> int | None:
        """The id of `token` if that text is exactly one token (e.g. a special token), else None."""
        try:
            ids = self.encode(token)
        except UserError:
            return None
        return ids[0] if len(ids) == 1 else None

    def token_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes one token stands for: bpe 'Ġthe' -> b' the'; special tokens -> their text."""
        token = self._text_of_id[self._check_id(i)]
        if self.kind == "char" or token in self._special_to_id:
            return token.encode("utf-8")
        return bytes(_BYTE_OF_STAND_IN[char] for char in token)

    def id_to_token_text(self, i: int) -> str:
        """Readable text of one token; bytes that are only part of a character are shown as "\\xe2"."""
        return self.token_bytes(i).decode("utf-8", errors="backslashreplace")

    def _check_id(self, i: int) -> int:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
        return i

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"
