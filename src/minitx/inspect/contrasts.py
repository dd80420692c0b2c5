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

An encoder-decoder's contrasts differ in the *source* and share the translation written so far
(`source_contrast`, `translation_contrasts`). Built-in ones swap one noun of a story sentence:

    "noun"    for one of the same target gender      The big dog sees ... / The big cat sees ...
              prefix "El", answers " perro" / " gato": the decoder must bring the new word across
    "gender"  for one of the other target gender     The dog runs. / The girl runs.
              prefix "", answers "El" / "La": the article is written before the noun that decides it

The prefix is where the two reference translations (the built-in corpus's renderings) first part,
and the answers are their next tokens; decoder positions are labelled "start" (the start token),
"prefix" (the translation so far) and "last". Source positions (the encoder-side grids) are labelled
by their word's role around the swapped noun -- "before", "article", "adjective", "noun", "after",
"end" (the end token): "The big dog sees ..." is article, adjective, noun, after, ... (`source_roles`).

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
from minitx.model.inputs import decoder_ids, document_ids, encode_source, end_token

if TYPE_CHECKING:
    import random

    from minitx.corpus.pairs import MinimalPair
    from minitx.text.tokenizer import Tokenizer

#: The phenomena `inspect-patch --pairs` can build contrasts for (the others differ in ways that no
#: single earlier word decides).
PATCHABLE = ("agreement_local", "agreement_far")
#: The residual grid's columns for phenomenon pairs, in order.
ROLE_LABELS = ("start", "subject", "clause", "last")
#: The built-in source pairs of an encoder-decoder (`translation_contrasts`), and what each swaps.
TRANSLATION_PATCHABLE = {
    "noun": "a noun swapped for one of the same target gender (the decoder must bring the new word across)",
    "gender": "a noun swapped for one of the other target gender (the article before it changes)",
}
#: Every label the grids order: the agreement roles, with the encoder-decoder's "prefix" before "last".
LABEL_ORDER = (*ROLE_LABELS[:-1], "prefix", ROLE_LABELS[-1])
#: The encoder-side grids' columns for built-in source pairs: each source word's role around the swapped noun.
SOURCE_LABELS = ("before", "article", "adjective", "noun", "after", "end")


@dataclass(frozen=True)
class Contrast:
    """One clean/corrupt pair of equally long token ids, its two answers, and a column label per position.

    On an encoder-decoder `clean` / `corrupt` are the decoder's inputs (the start token and the
    translation so far; usually the same) and `clean_source` / `corrupt_source` the encoder's (ids
    ending in the end token; any lengths); `clean_text` / `corrupt_text` are then the two sources and
    `prompt_text` the translation so far; `source_labels` is the encoder-side grids' column of each source
    position (None: the position's number). A GPT's contrasts have no sources.
    """

    clean: list[int]
    corrupt: list[int]
    good: int  # the answer on the clean prompt
    bad: int  # the answer on the corrupt prompt
    labels: list[str]
    clean_text: str = ""
    corrupt_text: str = ""
    clean_source: list[int] | None = None
    corrupt_source: list[int] | None = None
    prompt_text: str | None = None
    source_labels: list[str] | None = None


def answer_token(tokenizer: Tokenizer, word: str) -> int:
    """The one token of `word` as it follows a space (" runs"), or as written; a UserError saying how it splits."""
    if not word.strip():
        raise UserError("the answer word is empty; give a word that is one token (e.g. runs)")
    for form in (f" {word}" if not word.startswith(" ") else word, word):
        ids = tokenizer.encode(form)
        if len(ids) == 1:
            return ids[0]
    pieces = " + ".join(repr(tokenizer.id_to_token_text(i)) for i in tokenizer.encode(f" {word.lstrip()}"))
    raise UserError(f"{word!r} is not one token: this tokenizer splits it as {pieces}; choose a word that is one token")


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


# -- encoder-decoder: contrasts of two sources, the translation so far fixed ---------------------------


def encoder_ids(tokenizer: Tokenizer, sentence: str, block_size: int, flag: str = "--source") -> list[int]:
    """A source sentence as the encoder reads it: its ids and the end token; UserErrors naming `flag` when it is
    empty or too long (`model.inputs.encode_source`)."""
    return encode_source(tokenizer, sentence, block_size, flag)


def parting(tokenizer: Tokenizer, clean: str, corrupt: str) -> tuple[list[int], int, int] | None:
    """Where two translations part: (the common start's ids, the clean one's next id, the corrupt one's next id),
    each ending in the end token; None when they are the same."""
    end = end_token(tokenizer)
    a, b = [*tokenizer.encode(clean.strip()), end], [*tokenizer.encode(corrupt.strip()), end]
    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if k is None:
        return None
    return a[:k], a[k], b[k]


def decoder_labels(n_tokens: int) -> list[str]:
    """The residual grid's columns of a source pair: "start" (the start token), "prefix" (the translation so far),
    "last" (the position whose next token is scored).

        >>> decoder_labels(1), decoder_labels(4)
        (['last'], ['start', 'prefix', 'prefix', 'last'])
    """
    return ["start" if t == 0 else "prefix" for t in range(n_tokens - 1)] + ["last"]


def source_contrast(tokenizer: Tokenizer, clean: str, corrupt: str, *, prompt: str | None,
                    translations: tuple[str, str] | None, good: str | None, bad: str | None,
                    block_size: int) -> Contrast:
    """A contrast of two source sentences given by the user, with the translation so far fixed.

    The translation so far is `prompt`, else where the two `translations` part (`parting`); the answers are
    --answer's, else (without `prompt`) the two translations' next tokens, else -1 (each run's own top next
    token, filled in by the command). Labels are the decoder's tokens ("1 El").
    """
    clean_source = encoder_ids(tokenizer, clean, block_size, "--clean")
    corrupt_source = encoder_ids(tokenizer, corrupt, block_size, "--corrupt")
    good_id = answer_token(tokenizer, good) if good is not None else -1
    bad_id = answer_token(tokenizer, bad) if bad is not None else -1
    if prompt is None:
        if translations is None:
            raise UserError("give the translation so far with --prompt")
        parted = parting(tokenizer, *translations)
        if parted is None:
            raise UserError(f"both sources translate as {translations[0]!r}; give --prompt and --answer GOOD BAD")
        prefix, next_clean, next_corrupt = parted
        prompt = tokenizer.decode(prefix)
        ids = [end_token(tokenizer), *prefix]
        good_id = good_id if good_id >= 0 else next_clean
        bad_id = bad_id if bad_id >= 0 else next_corrupt
    else:
        ids = decoder_ids(tokenizer, prompt, block_size)
    labels = [f"{t} {tokenizer.id_to_token_text(i).strip() or repr(tokenizer.id_to_token_text(i))}"
              for t, i in enumerate(ids)]
    source_labels = [f"{t} {tokenizer.id_to_token_text(i).strip() or repr(tokenizer.id_to_token_text(i))}"
                     for t, i in enumerate(clean_source)]
    return Contrast(ids, ids, good_id, bad_id, labels, clean.strip(), corrupt.strip(), clean_source,
                    corrupt_source, prompt.strip(), source_labels)


def _noun_groups() -> dict[str, list]:
    """The English nouns a swap may exchange, in groups that do the same things in the stories."""
    from minitx.corpus import lexicon as en

    group = {en.MALE: "people", en.FEMALE: "people", en.PERSON: "people", en.ANIMAL: "animals",
             en.THING: "things", en.FOOD: "things", en.PLACE: "places"}
    groups: dict[str, list] = {}
    for noun in en.NOUNS:
        if noun.plural != noun.singular:  # "sheep" says no number
            groups.setdefault(group[noun.kind], []).append(noun)
    return groups


def swap_noun(sentence: str, phenomenon: str, rng: random.Random) -> tuple[str, str, int] | str:
    """`sentence` with its first noun swapped (see the module): (new sentence, the old noun's target word, its index
    among the words), or why it could not be."""
    from minitx.corpus import target_lexicon as tl
    from minitx.corpus.lexicon import article_for

    groups = _noun_groups()
    words = sentence.split(" ")
    for i, word in enumerate(words):
        core = word.rstrip(".,?!;:").lower()
        for name, nouns in groups.items():
            for noun in nouns:
                if core not in (noun.singular, noun.plural):
                    continue
                number = "sg" if core == noun.singular else "pl"
                gender = tl.NOUNS[noun.singular].gender
                same = phenomenon == "noun"
                options = [n for n in nouns if n is not noun and (tl.NOUNS[n.singular].gender == gender) == same]
                if not options:
                    return f"no {name} noun of the {'same' if same else 'other'} gender"
                other = rng.choice(options)
                new = other.singular if number == "sg" else other.plural
                swapped = list(words)
                swapped[i] = (new[:1].upper() + new[1:] if word[:1].isupper() else new) + word[len(core):]
                if i > 0 and words[i - 1].lower() in ("a", "an"):
                    article = article_for(new)
                    swapped[i - 1] = article.capitalize() if words[i - 1][:1].isupper() else article
                target_noun = tl.NOUNS[noun.singular]
                return " ".join(swapped), target_noun.singular if number == "sg" else target_noun.plural, i
    return "no noun to swap"


def translation_contrast(tokenizer: Tokenizer, sentence: str, phenomenon: str, block_size: int,
                         rng: random.Random) -> Contrast | str:
    """The contrast of one story sentence and its noun-swapped twin (see the module), or why it was skipped."""
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import translate

    swapped = swap_noun(sentence, phenomenon, rng)
    if isinstance(swapped, str):
        return swapped
    other, noun_word, noun_at = swapped
    try:
        clean_target, corrupt_target = translate(sentence)["target"], translate(other)["target"]
    except (SentenceRejected, ValueError, UserError):
        return "the swapped sentence is not in the grammar"
    parted = parting(tokenizer, clean_target, corrupt_target)
    if parted is None:
        return "both translate alike"
    prefix, good, bad = parted
    if phenomenon == "gender" and tokenizer.id_to_token_text(good).strip().lower() == noun_word.lower():
        return "no article shows the gender"
    try:
        clean_source, corrupt_source = (encoder_ids(tokenizer, s, block_size) for s in (sentence, other))
    except UserError:
        return "longer than the block"
    ids = [end_token(tokenizer), *prefix]
    if len(ids) > block_size:
        return "longer than the block"
    return Contrast(ids, ids, good, bad, decoder_labels(len(ids)), sentence, other, clean_source, corrupt_source,
                    tokenizer.decode(prefix).strip(), source_roles(tokenizer, sentence, noun_at))


def source_roles(tokenizer: Tokenizer, sentence: str, noun_at: int) -> list[str]:
    """Per encoder position of `sentence` (its tokens, then the end token): its word's role around the noun at
    word `noun_at` -- "adjective"s and an "article" right before it, "before" further back, "after", "end".

    Word boundaries are found by encoding growing prefixes (the tokenizers here cut before spaces).

        >>> from minitx.text.tokenizer import Tokenizer
        >>> tokenizer = Tokenizer.train_char("Suddenly, the big dog runs.")   # one token a character
        >>> roles = source_roles(tokenizer, "Suddenly, the big dog runs.", 3)
        >>> [roles[t] for t in (0, 10, 14, 18, 22, len(roles) - 1)]   # "S", "t", " b", " d", " r", the end token
        ['before', 'article', 'adjective', 'noun', 'after', 'end']
    """
    from minitx.corpus.lexicon import WORDS

    words = sentence.strip().split(" ")
    roles = ["before"] * noun_at + ["noun"] + ["after"] * (len(words) - noun_at - 1)
    k = noun_at - 1
    while k >= 0 and getattr(WORDS.get(words[k].rstrip(".,?!;:").lower()), "terminal", None) == "ADJ":
        roles[k], k = "adjective", k - 1
    if k >= 0 and getattr(WORDS.get(words[k].rstrip(".,?!;:").lower()), "terminal", None) == "DET":
        roles[k] = "article"
    ends = [len(tokenizer.encode(" ".join(words[: i + 1]))) for i in range(len(words))]
    labels = [roles[next((i for i, end in enumerate(ends) if t < end), len(words) - 1)] for t in range(ends[-1])]
    return [*labels, "end"]


def check_translation_phenomenon(phenomenon: str) -> None:
    """A UserError naming the built-in source pairs when `phenomenon` is not one of them."""
    if phenomenon not in TRANSLATION_PATCHABLE:
        raise UserError(f"--pairs {phenomenon!r} is not a source pair of an encoder-decoder run; choose one of: "
                        f"{', '.join(TRANSLATION_PATCHABLE)}")


def translation_contrasts(tokenizer: Tokenizer, phenomenon: str, n: int, block_size: int, seed: int = 0
                          ) -> tuple[list[Contrast], Counter[str]]:
    """Up to `n` source contrasts of `phenomenon` ("noun" / "gender") from seeded story sentences, and why others
    were skipped (draws up to 8·n sentences)."""
    import random

    from minitx.corpus.translation import translation_pairs

    check_translation_phenomenon(phenomenon)
    rng = random.Random(seed)
    contrasts: list[Contrast] = []
    skipped: Counter[str] = Counter()
    for pair in translation_pairs(8 * n, seed=seed):
        made = translation_contrast(tokenizer, pair["source"], phenomenon, block_size, rng)
        if isinstance(made, str):
            skipped[made] += 1
        else:
            contrasts.append(made)
            if len(contrasts) == n:
                break
    return contrasts, skipped
