"""Clean/corrupt prompts for activation patching, made from the built-in minimal pairs or given as text.

Patching needs two prompts of the same token length that lead to different answers. A minimal pair
of `agreement_local` / `agreement_far` differs only at the verb ("The dog that the cats chase runs."
vs "... run."), so the contrast is built one step earlier: the clean prompt is the sentence up to the
verb, the corrupt one flips the subject's number (and a determiner that fits one number only becomes
"the" in both, so only the noun tells the number), and the answers are the two verb forms:

    clean   <|doc|>The dog that the cats chase        answer " runs"   (the good twin's verb)
    corrupt <|doc|>The dogs that the cats chase       answer " run"    (the bad twin's verb)

Metric: Δ = logit[" runs"] - logit[" run"] at the last position; positive on the clean prompt,
negative on the corrupt one when the model knows agreement. Each position gets a label -- "start"
(before the subject noun), "subject", "clause" (between the noun and the last token), "last" -- so
pairs of different lengths can share one residual × position grid. A pair whose flipped noun or
verb does not keep the token count, or whose subject is a name, is skipped and counted.

Example:
    >>> flip_subject("the dog that the cats chase".split(), 1)
    ['the', 'dogs', 'that', 'the', 'cats', 'chase']
    >>> flip_subject("a dog that chases the cats".split(), 1)
    ['the', 'dogs', 'that', 'chase', 'the', 'cats']
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    from minitx.corpus.pairs import MinimalPair
    from minitx.text.tokenizer import Tokenizer

#: The phenomena `inspect-patch --pairs` can build contrasts for (the others differ in ways that no
#: single earlier word decides).
PATCHABLE = ("agreement_local", "agreement_far")
#: The residual grid's columns for phenomenon pairs, in order.
ROLE_LABELS = ("start", "subject", "clause", "last")


@dataclass(frozen=True)
class Contrast:
    """One clean/corrupt pair of equally long token ids, its two answers, and a column label per position."""

    clean: list[int]
    corrupt: list[int]
    good: int  # the answer on the clean prompt
    bad: int  # the answer on the corrupt prompt
    labels: list[str]
    clean_text: str = ""
    corrupt_text: str = ""


def answer_token(tokenizer: Tokenizer, word: str) -> int:
    """The one token of `word` as it follows a space (" runs"), or as written; a UserError saying how it splits."""
    for form in (f" {word}" if not word.startswith(" ") else word, word):
        ids = tokenizer.encode(form)
        if len(ids) == 1:
            return ids[0]
    pieces = " + ".join(repr(tokenizer.id_to_token_text(i)) for i in tokenizer.encode(f" {word.lstrip()}"))
    raise UserError(f"{word!r} is not one token: this tokenizer splits it as {pieces}; choose a word that is one token")


def document_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """`text` as a document starts: <|doc|> in front when the tokenizer knows it."""
    return tokenizer.encode((DOC_TOKEN if tokenizer.token_id(DOC_TOKEN) is not None else "") + text)


def text_contrast(tokenizer: Tokenizer, clean: str, corrupt: str, good: str | None, bad: str | None,
                  block_size: int) -> Contrast:
    """A contrast from two texts given by the user; labels are the clean tokens ("3 dog"). UserErrors for
    different token lengths, a prompt past the block, and answers that are not one token.

    Without answers (None) the clean and corrupt prompts' own top next tokens are used (see `fill_answers`).
    """
    clean_ids, corrupt_ids = document_ids(tokenizer, clean), document_ids(tokenizer, corrupt)
    if len(clean_ids) != len(corrupt_ids):
        raise UserError(f"--clean is {len(clean_ids)} tokens but --corrupt is {len(corrupt_ids)}: patching needs "
                        "prompts of the same token length")
    if len(clean_ids) > block_size:
        raise UserError(f"the prompt is {len(clean_ids)} tokens but this model reads at most {block_size}; "
                        "shorten it")
    labels = [f"{t} {tokenizer.id_to_token_text(i).strip() or repr(tokenizer.id_to_token_text(i))}"
              for t, i in enumerate(clean_ids)]
    good_id = answer_token(tokenizer, good) if good is not None else -1
    bad_id = answer_token(tokenizer, bad) if bad is not None else -1
    return Contrast(clean_ids, corrupt_ids, good_id, bad_id, labels, clean, corrupt)


def other_verb_form(word: str) -> str | None:
    """runs <-> run, is <-> are, has <-> have; None for a word that is not a verb of one number."""
    from minitx.corpus.lexicon import WORDS, third_person

    entry = WORDS.get(word)
    if entry is None or len(entry.number) != 1:
        return None
    if entry.terminal == "BE":
        return "are" if word == "is" else "is" if word == "are" else None
    if entry.terminal == "AUX":
        return "do" if word == "does" else "does"
    if not entry.terminal.startswith("VERB"):
        return None
    return entry.base if "sg" in entry.number else third_person(entry.base)


def flip_subject(words: list[str], noun_at: int) -> list[str] | None:
    """The words with the subject noun at `noun_at` in the other number, a determiner that fits it ("a dog" ->
    "the dogs", "these dogs" -> "the dog") and, in a subject relative clause, its verb too ("that runs" ->
    "that run"), so the corrupt prompt is grammatical; None when the subject is not a noun (a name)."""
    from minitx.corpus.lexicon import WORDS

    entry = WORDS.get(words[noun_at].lower())
    if entry is None or entry.terminal != "NOUN" or len(entry.number) != 1:
        return None
    if "pl" in entry.number:
        other = entry.base
    else:
        plurals = [w for w, e in WORDS.items() if e.terminal == "NOUN" and e.base == entry.base and e.number == {"pl"}]
        if not plurals:
            return None
        other = plurals[0]
    new_number = "sg" if "pl" in entry.number else "pl"
    flipped = list(words)
    flipped[noun_at] = other
    for i in range(noun_at):
        det = WORDS.get(flipped[i].lower())
        if det is not None and det.terminal == "DET" and new_number not in det.number:
            flipped[i] = "the"
    rel = noun_at + 1
    if rel + 1 < len(words) and WORDS.get(words[rel], None) is not None and WORDS[words[rel]].terminal == "REL":
        verb = other_verb_form(words[rel + 1])  # a subject relative agrees too: "the dog that runs" -> "dogs that run"
        if verb is not None:
            flipped[rel + 1] = verb
    if words[0][:1].isupper():
        flipped[0] = flipped[0][:1].upper() + flipped[0][1:]
    return flipped


def pair_contrast(tokenizer: Tokenizer, pair: MinimalPair, block_size: int) -> Contrast | str:
    """The contrast of one agreement pair (see the module), or why it was skipped."""
    good_words, bad_words = pair.good.rstrip(".").split(" "), pair.bad.rstrip(".").split(" ")
    differ = [i for i, (g, b) in enumerate(zip(good_words, bad_words, strict=True)) if g != b]
    verb_at = differ[0]
    noun_at = verb_at - pair.distance
    flipped = flip_subject(good_words[:verb_at], noun_at)
    if flipped is None:
        return "the subject is a name"
    prefix = flip_subject(flipped, noun_at)  # back again: a determiner of one number ("a") is now "the" in both
    assert prefix is not None
    try:
        good, bad = answer_token(tokenizer, good_words[verb_at]), answer_token(tokenizer, bad_words[verb_at])
    except UserError:
        return "a verb is not one token"
    clean_text, corrupt_text = " ".join(prefix), " ".join(flipped)
    clean, corrupt = document_ids(tokenizer, clean_text), document_ids(tokenizer, corrupt_text)
    if len(clean) != len(corrupt):
        return "the flipped noun changes the token count"
    if len(clean) > block_size:
        return "longer than the block"
    labels = role_labels(tokenizer, prefix, noun_at, len(clean))
    return Contrast(clean, corrupt, good, bad, labels, clean_text, corrupt_text)


def role_labels(tokenizer: Tokenizer, words: list[str], noun_at: int, n_tokens: int) -> list[str]:
    """Per token: "start" before the subject noun, "subject", "clause" after it, "last" for the final token.

    A word's tokens are found by encoding the growing prefix (word boundaries are token boundaries for
    the tokenizers here, which cut before spaces)."""
    doc = len(document_ids(tokenizer, ""))  # 1 when <|doc|> leads, else 0
    ends = [len(document_ids(tokenizer, " ".join(words[: k + 1]))) for k in range(len(words))]  # end of word k
    labels = []
    for t in range(n_tokens):
        word = next((k for k, end in enumerate(ends) if t < end), len(words) - 1)
        labels.append("start" if t < doc or word < noun_at else "subject" if word == noun_at else "clause")
    labels[-1] = "last"
    return labels


def check_phenomenon(phenomenon: str) -> None:
    """A UserError listing the phenomena that can be patched when `phenomenon` is not one of them."""
    from minitx.corpus.pairs import PHENOMENA

    if phenomenon not in PATCHABLE:
        what = "is not a minimal-pair phenomenon" if phenomenon not in PHENOMENA else "cannot be patched"
        raise UserError(f"--pairs {phenomenon!r} {what}; choose one of: {', '.join(PATCHABLE)}")


def phenomenon_contrasts(
    tokenizer: Tokenizer, phenomenon: str, n: int, block_size: int, seed: int = 0
) -> tuple[list[Contrast], Counter[str]]:
    """Up to `n` contrasts of `phenomenon` from the built-in minimal pairs (seeded), and why others were skipped.

    Draws up to 8·n pairs so that skipped ones are replaced; UserError for a phenomenon that cannot be patched.
    """
    from minitx.corpus.pairs import minimal_pairs

    check_phenomenon(phenomenon)
    contrasts: list[Contrast] = []
    skipped: Counter[str] = Counter()
    for pair in minimal_pairs(8 * n, seed=seed, phenomena=(phenomenon,)):
        made = pair_contrast(tokenizer, pair, block_size)
        if isinstance(made, str):
            skipped[made] += 1
        elif len(contrasts) < n:
            contrasts.append(made)
    return contrasts, skipped
