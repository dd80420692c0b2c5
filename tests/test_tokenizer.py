"""Tokenizer properties: exact round trips, whole special tokens, safe files, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from minitx.errors import UserError
from minitx.text.display import render_tokens
from minitx.text.tokenizer import DOC_TOKEN, Tokenizer, _cut_into_chunks

STORY = (
    "Once upon a time, a small cat found a red ball in the garden.\n"
    "The cat played with the ball all day, and then it slept.\n"
    "  Indented lines, tabs\tand CRLF\r\n endings appear too; numbers 12 345!\n"
)
CORPUS = "".join(f"{DOC_TOKEN}{STORY}" for _ in range(40))  # about 7 KB
EXTRA_SPECIAL = "<|end of text|>"

TRICKY = [
    "",
    " ",
    "   leading spaces",
    "multiple   spaces   inside",
    "trailing spaces   ",
    "\ttabs\t\tand\t",
    "windows\r\nline\r\nendings\r\n",
    "\n\n\nblank lines\n\n",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧",
    "CJK 漢字かなカナ 한국어",
    "combining e\u0301 vs \u00e9, a\u0308\u0304",
    "control \x00\x01\x07\x1b[0m\x7f chars",
    "zero width \u200b\u200d\ufeff",
    "Ġ and Ċ look like byte-level stand-ins",
    "<|doc",
    "|>",
    "<|doc|",
    "<||doc|>>",
]

# Text Python can hold but UTF-8 cannot (lone surrogates) is refused by design; see test below.
unicode_text = st.text(st.characters(codec="utf-8"), max_size=200)
text_with_special_tokens = st.lists(
    st.one_of(unicode_text, st.sampled_from([DOC_TOKEN, EXTRA_SPECIAL])), max_size=6
).map("".join)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return Tokenizer.train_bpe([CORPUS], vocab_size=400, special_tokens=[DOC_TOKEN, EXTRA_SPECIAL], show_progress=False)


@pytest.fixture(scope="module")
def ascii_bpe() -> Tokenizer:
    """Trained on ASCII only: every byte >= 0x80 is unseen in training."""
    return Tokenizer.train_bpe([STORY * 5], vocab_size=300, show_progress=False)


def char_for(text: str) -> Tokenizer:
    """A char tokenizer whose vocabulary covers `text` (and the corpus)."""
    return Tokenizer.train_char(CORPUS + text, special_tokens=[DOC_TOKEN, EXTRA_SPECIAL])


# ----------------------------------------------------------------------------------- round trips
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_with_special_tokens)
def test_bpe_decode_inverts_encode_for_any_text(bpe: Tokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(text=text_with_special_tokens)
def test_char_decode_inverts_encode_for_any_text_in_its_vocabulary(text: str) -> None:
    tok = char_for(text)
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_round_trip_exactly(bpe: Tokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text
    tok = char_for(text)
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("text", ["😀", "漢字", "\x00\x1f\x7f", "é\u0301", "日本語 and ASCII 🎉\r\n"])
def test_bytes_never_seen_in_training_still_round_trip(ascii_bpe: Tokenizer, text: str) -> None:
    ids = ascii_bpe.encode(text)
    assert len(ids) >= len(text.encode("utf-8")) // 4  # nothing was silently dropped
    assert ascii_bpe.decode(ids) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_with_special_tokens)
def test_token_bytes_concatenate_to_the_utf8_of_the_text(bpe: Tokenizer, text: str) -> None:
    assert b"".join(bpe.token_bytes(i) for i in bpe.encode(text)) == text.encode("utf-8")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from(["a", "b.", " ", "\n", "\n\n", "  x", "\r\n", "é", DOC_TOKEN]), max_size=60))
def test_cutting_text_at_safe_newlines_does_not_change_bpe_ids(bpe: Tokenizer, text: list[str]) -> None:
    whole = "".join(text)
    pieces = _cut_into_chunks(whole, chunk_chars=3)
    assert "".join(pieces) == whole
    assert [i for piece in pieces for i in bpe.encode(piece)] == bpe.encode(whole)


def test_cutting_a_large_corpus_does_not_change_what_bpe_learns() -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    text = STORY * 400  # ~70 KB, so minitx cuts it into several chunks
    assert len(_cut_into_chunks(text)) > 1
    raw = HFTokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        [text],
        trainers.BpeTrainer(
            vocab_size=500, special_tokens=[DOC_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    ours = Tokenizer.train_bpe([text], vocab_size=500, show_progress=False)
    assert json.loads(ours.to_json_str())["model"] == json.loads(raw.to_str())["model"]


def test_lone_surrogates_are_refused_because_they_have_no_utf8(bpe: Tokenizer) -> None:
    for tok in (bpe, char_for("ab")):
        with pytest.raises(UserError, match="surrogate"):
            tok.encode("a\ud800b")
    with pytest.raises(UserError, match="surrogate"):
        Tokenizer.train_bpe(["ok", "bad \udfff"], vocab_size=300, show_progress=False)


def test_decode_refuses_ids_outside_the_vocabulary(bpe: Tokenizer) -> None:
    for bad in ([bpe.vocab_size], [-1], [5, bpe.vocab_size + 10]):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            bpe.decode(bad)


# -------------------------------------------------------------------------------- special tokens
@pytest.mark.parametrize("kind", ["bpe", "char"])
@pytest.mark.parametrize(
    "text, count",
    [
        (f"before{DOC_TOKEN}after", 1),
        (f"word {DOC_TOKEN} word", 1),
        (f"{DOC_TOKEN}{DOC_TOKEN}{DOC_TOKEN}", 3),
        (f"x{DOC_TOKEN}\n{DOC_TOKEN}y{EXTRA_SPECIAL}{DOC_TOKEN}", 4),
        (f"<{DOC_TOKEN}>|{DOC_TOKEN}|", 2),
    ],
)
def test_special_tokens_are_never_split(bpe: Tokenizer, kind: str, text: str, count: int) -> None:
    tok = bpe if kind == "bpe" else char_for(text.replace(DOC_TOKEN, "").replace(EXTRA_SPECIAL, ""))
    doc_id, extra_id = tok.token_id(DOC_TOKEN), tok.token_id(EXTRA_SPECIAL)
    ids = tok.encode(text)
    assert ids.count(doc_id) + ids.count(extra_id) == count
    assert tok.decode(ids) == text
    assert tok.decode([doc_id]) == DOC_TOKEN


def test_special_tokens_come_first_and_are_listed(bpe: Tokenizer) -> None:
    assert bpe.special_tokens == [DOC_TOKEN, EXTRA_SPECIAL]
    assert [bpe.token_id(DOC_TOKEN), bpe.token_id(EXTRA_SPECIAL)] == [0, 1]
    assert bpe.id_to_token_text(0) == DOC_TOKEN


def test_bpe_learns_no_merges_from_special_token_text(bpe: Tokenizer) -> None:
    texts = [bpe.id_to_token_text(i) for i in range(bpe.vocab_size)]
    assert not [t for t in texts if "<|" in t and t not in bpe.special_tokens]


def test_char_vocabulary_is_special_tokens_then_sorted_characters() -> None:
    tok = Tokenizer.train_char(f"{DOC_TOKEN}ba\n{DOC_TOKEN}ab")
    assert [tok.id_to_token_text(i) for i in range(tok.vocab_size)] == [DOC_TOKEN, "\n", "a", "b"]
    assert tok.kind == "char" and tok.vocab_size == 4


def test_char_refuses_an_unknown_character_and_names_it() -> None:
    tok = Tokenizer.train_char("hello world")
    with pytest.raises(UserError, match=r"'é' \(U\+00E9\).*retrain") as excinfo:
        tok.encode("héllo")
    assert "\n" not in str(excinfo.value)
    assert tok.token_id("é") is None


# ------------------------------------------------------------------------------------ training
def test_vocab_size_below_bytes_plus_special_tokens_is_refused_with_the_minimum() -> None:
    with pytest.raises(UserError, match="at least 258"):
        Tokenizer.train_bpe([STORY], vocab_size=257, special_tokens=[DOC_TOKEN, EXTRA_SPECIAL])
    tok = Tokenizer.train_bpe([STORY], vocab_size=258, special_tokens=[DOC_TOKEN, EXTRA_SPECIAL], show_progress=False)
    assert tok.vocab_size == 258  # just the bytes and the special tokens


def test_min_frequency_stops_rare_merges() -> None:
    text = "ab " * 50 + "cd " * 3  # the pair (c, d) occurs 3 times
    for min_frequency, cd_tokens in [(2, 1), (3, 1), (4, 2)]:
        tok = Tokenizer.train_bpe([text], vocab_size=300, min_frequency=min_frequency, show_progress=False)
        assert len(tok.encode("cd")) == cd_tokens


def test_training_from_files_equals_training_from_text(tmp_path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(CORPUS.encode("utf-8"))  # keeps the "\r\n" in CORPUS
    from_file = Tokenizer.train_bpe(files=[path], vocab_size=350, show_progress=False)
    from_text = Tokenizer.train_bpe(iter([CORPUS]), vocab_size=350, show_progress=False)
    assert from_file.to_json_str() == from_text.to_json_str()


def test_bad_training_input_is_a_user_error(tmp_path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    cases = [  # (arguments, what the one line must say)
        (dict(files=[tmp_path / "missing.txt"]), "missing.txt"),
        (dict(files=[latin1]), "UTF-8"),
        (dict(texts=["", ""]), "the training text is empty"),
        (dict(texts=[STORY], special_tokens=[""]), "special tokens must be non-empty strings"),
        (dict(texts=[STORY], min_frequency=0), "--min-frequency must be at least 1"),
    ]
    for case, words in cases:
        with pytest.raises(UserError, match=re.escape(words)):
            Tokenizer.train_bpe(**{"vocab_size": 300, "show_progress": False, **case})
    with pytest.raises(UserError, match="no characters besides special tokens"):
        Tokenizer.train_char(DOC_TOKEN * 3)


def _summary_rows(tok: Tokenizer, text: str) -> dict[str, str]:
    """The rows of the `minitx tokenize train` summary table, as label -> shown value."""
    from minitx.commands.tokenize import tokenizer_summary

    table = tokenizer_summary(tok, text, Path("tok.json"), seconds=1.5)
    labels, values = (list(column.cells) for column in table.columns)
    return dict(zip(labels, values, strict=True))


def test_tokenizer_summary_counts_corpus_bytes_tokens_and_compression(bpe: Tokenizer) -> None:
    rows = _summary_rows(bpe, CORPUS)
    n_bytes, n_tokens = len(CORPUS.encode("utf-8")), len(bpe.encode(CORPUS))
    assert rows["kind"] == "bpe" and rows["vocabulary size"] == f"{bpe.vocab_size:,}"
    assert rows["corpus bytes"] == f"{n_bytes:,}" and rows["corpus tokens"] == f"{n_tokens:,}"
    assert rows["bytes per token"] == f"{n_bytes / n_tokens:.3f}" and n_bytes / n_tokens > 2
    assert rows["seconds"] == "1.50"
    char = Tokenizer.train_char(CORPUS)
    char_tokens = len(CORPUS) - 40 * (len(DOC_TOKEN) - 1)  # one token per character, <|doc|> counts once
    assert _summary_rows(char, CORPUS)["corpus tokens"] == f"{char_tokens:,}"


# ---------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_save_then_load_gives_identical_encodings(bpe: Tokenizer, tmp_path, kind: str) -> None:
    tok = bpe if kind == "bpe" else char_for("")
    path = tmp_path / "run" / "tokenizer.json"
    tok.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp file left
    loaded = Tokenizer.load(path)
    assert (loaded.kind, loaded.vocab_size, loaded.special_tokens) == (kind, tok.vocab_size, tok.special_tokens)
    text = CORPUS[:1500] + EXTRA_SPECIAL
    assert loaded.encode(text) == tok.encode(text)
    assert Tokenizer.from_json_str(tok.to_json_str()).encode(text) == tok.encode(text)


def test_saved_char_tokenizer_gives_the_same_ids_in_hf_tokenizers(tmp_path) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    tok = char_for("")
    tok.save(tmp_path / "tokenizer.json")
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = CORPUS[:500]
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    assert hf.decode(tok.encode(text), skip_special_tokens=False) == text


def test_loading_a_missing_or_corrupt_file_is_a_one_line_user_error(bpe: Tokenizer, tmp_path) -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, normalizers, pre_tokenizers

    good = json.loads(bpe.to_json_str())
    foreign = HFTokenizer(models.BPE())
    foreign.normalizer = normalizers.Lowercase()
    foreign.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    broken_merges = {**good, "model": {**good["model"], "merges": [["no", "such"]]}}
    files = {
        "binary.json": b"\x89PNG\r\n\x1a\n\x00\xff",
        "truncated.json": bpe.to_json_str()[:500].encode(),
        "list.json": b"[1, 2, 3]",
        "config.json": json.dumps({"vocab_size": 5}).encode(),
        "foreign.json": foreign.to_str().encode(),
        "broken.json": json.dumps(broken_merges).encode(),
    }
    says = {"binary.json": "not UTF-8", "truncated.json": "not valid JSON", "list.json": "not a minitx tokenizer",
            "config.json": "not a minitx tokenizer", "foreign.json": "not a minitx tokenizer",
            "broken.json": "damaged", "missing.json": "not found"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for name in [*files, "missing.json"]:
        with pytest.raises(UserError) as excinfo:
            Tokenizer.load(tmp_path / name)
        message = str(excinfo.value)
        assert "\n" not in message and name in message and says[name] in message, (name, message)


# ------------------------------------------------------------------------------------- display
def test_render_tokens_makes_whitespace_visible_and_shows_ids(bpe: Tokenizer) -> None:
    text = f"{DOC_TOKEN}a cat\tsat\n"
    console = Console(record=True, width=100, color_system="truecolor")
    console.print(render_tokens(bpe, text))
    shown = console.export_text()
    assert "a·cat→sat↵" in shown and DOC_TOKEN in shown
    assert " ".join(map(str, bpe.encode(text))) in shown
    styles = {span.style for span in render_tokens(bpe, "one two three four").renderables[0].spans}
    assert len(styles) >= 2  # neighbouring tokens get different backgrounds


def test_id_to_token_text_shows_partial_characters_as_escapes(ascii_bpe: Tokenizer) -> None:
    first_byte_of_emoji = ascii_bpe.encode("😀")[0]
    assert ascii_bpe.id_to_token_text(first_byte_of_emoji) == "\\xf0"
    assert ascii_bpe.id_to_token_text(ascii_bpe.encode(" ")[0]) == " "
