"""How good is a translation, and how well does a cross-attention head align the words?

Output against reference, over a set of sentences:

    exact match   share of sentences identical to the reference (after trimming spaces)
    chrF          character n-gram F-score (sacrebleu; 0-100): partial credit for nearly right words
    BLEU          word n-gram precision with a brevity penalty (sacrebleu; 0-100)

and the same split by phenomenon: how many adjective-noun phrases the English sentence has (0 / 1 / 2+:
two such phrases are where a model must know which adjective goes with which noun), and how far words
move (the mean |source position - target position| over the gold links, in buckets).

A head's alignment: pool its weights over subword tokens to words (`pool_attention`), take each target
word's most-attended source word (`attention_to_links`), and compare with the gold links S:

    AER = 1 - 2 |A ∩ S| / (|A| + |S|)      (sure links only; 0 = the gold alignment exactly)

`random_head_links` is the baseline: a head whose weights carry no information.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

Link = tuple[int, int]  # (source word, target word)
ADJECTIVE_BUCKETS = ("0", "1", "2+")
#: Buckets of the mean |source position - target position| of a pair's gold links (upper bounds, inclusive).
MOVEMENT_BUCKETS = (("0", 0.0), ("(0, 0.5]", 0.5), ("(0.5, 1]", 1.0), (">1", float("inf")))


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Share of hypotheses equal to their reference (spaces at the ends ignored); 0.0 for no sentences."""
    _same_length(hypotheses, references)
    if not references:
        return 0.0
    return sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)) / len(references)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2), 0-100."""
    from sacrebleu.metrics import CHRF

    _same_length(hypotheses, references)
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults: 4-grams, its 13a tokenizer), 0-100."""
    from sacrebleu.metrics import BLEU

    _same_length(hypotheses, references)
    return float(BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def translation_scores(hypotheses: Sequence[str], references: Sequence[str], order: str | None = None) -> dict:
    """{"n", "exact_match", "chrf", "bleu"} and, given the target word `order`, "grammatical": the share of
    hypotheses the target-language checker accepts."""
    scores: dict[str, Any] = {"n": len(references), "exact_match": exact_match(hypotheses, references),
                              "chrf": chrf(hypotheses, references), "bleu": bleu(hypotheses, references)}
    if order is not None:
        from minitx.corpus.target_check import check_target

        accepted = sum(check_target(h, order)[0] for h in hypotheses)
        scores["grammatical"] = accepted / len(hypotheses) if hypotheses else 0.0
    return scores


def scores_by_phenomenon(pairs: Sequence[dict], hypotheses: Sequence[str], order: str | None = None) -> dict:
    """`translation_scores` per bucket: {"adjective_phrases": {"0": ..., "1": ..., "2+": ...},
    "movement": {"0": ..., "(0, 0.5]": ..., ...}}. Buckets with no sentence are left out; pairs without
    an alignment have no movement, and sources outside the story grammar no adjective count."""
    _same_length(hypotheses, pairs)
    groups: dict[str, dict[str, list[int]]] = {"adjective_phrases": {}, "movement": {}}
    for index, pair in enumerate(pairs):
        phrases = _adjective_phrases(pair["source"])
        if phrases is not None:
            groups["adjective_phrases"].setdefault(ADJECTIVE_BUCKETS[min(phrases, 2)], []).append(index)
        if pair.get("alignment"):
            groups["movement"].setdefault(movement_bucket(pair["alignment"]), []).append(index)
    order_of = {"adjective_phrases": list(ADJECTIVE_BUCKETS), "movement": [name for name, _ in MOVEMENT_BUCKETS]}
    return {
        phenomenon: {
            bucket: translation_scores([hypotheses[i] for i in buckets[bucket]],
                                       [pairs[i]["target"] for i in buckets[bucket]], order)
            for bucket in order_of[phenomenon] if bucket in buckets
        }
        for phenomenon, buckets in groups.items()
    }


def _adjective_phrases(source: str) -> int | None:
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import adjective_noun_phrases

    try:
        return adjective_noun_phrases(source)
    except SentenceRejected:
        return None


def movement(alignment: Iterable[Sequence[int]]) -> float:
    """Mean |source word - target word| over the links: how far, on average, words move (0 for no links)."""
    distances = [abs(source - target) for source, target in alignment]
    return sum(distances) / len(distances) if distances else 0.0


def movement_bucket(alignment: Iterable[Sequence[int]]) -> str:
    """The MOVEMENT_BUCKETS bucket of a pair's mean movement: [[0, 0], [1, 2], [2, 1]] (mean 2/3) -> "(0.5, 1]"."""
    distance = movement(alignment)
    return next(name for name, upper in MOVEMENT_BUCKETS if distance <= upper)


# -- alignments ----------------------------------------------------------------------------------------

def alignment_error_rate(predicted_links: Iterable[Sequence[int]], gold_links: Iterable[Sequence[int]]) -> float:
    """AER = 1 - 2|A ∩ S| / (|A| + |S|) of one sentence's links, sure links only (0.0 when both are empty).

    >>> alignment_error_rate([(0, 0), (1, 2)], [(0, 0), (1, 1), (2, 2)])   # 1 - 2*1/(2+3)
    0.6
    """
    predicted, gold = _link_set(predicted_links), _link_set(gold_links)
    if not predicted and not gold:
        return 0.0
    return 1.0 - 2.0 * len(predicted & gold) / (len(predicted) + len(gold))


def corpus_alignment_error_rate(predicted: Sequence[Iterable[Sequence[int]]],
                                gold: Sequence[Iterable[Sequence[int]]]) -> float:
    """AER over many sentences: the counts |A ∩ S|, |A|, |S| are summed first (as in Och & Ney), so long
    sentences weigh more than in a mean of per-sentence AERs."""
    _same_length(predicted, gold)
    hits = total = 0
    for links, gold_links in zip(predicted, gold, strict=True):
        a, s = _link_set(links), _link_set(gold_links)
        hits += len(a & s)
        total += len(a) + len(s)
    return 1.0 - 2.0 * hits / total if total else 0.0


def pool_attention(weights: Any, src_token_to_word: Sequence[int], tgt_token_to_word: Sequence[int]) -> np.ndarray:
    """A head's weights [T_tgt_tokens, T_src_tokens] -> word to word [n_tgt_words, n_src_words].

    A target word's row is the mean of its tokens' rows (each a distribution over source tokens), summed
    over the tokens of each source word (attention to a word is the attention to its pieces). Tokens mapped
    to a negative word (spaces, <|doc|>, padding) are left out.
    """
    matrix = _as_array(weights)
    src, tgt = np.asarray(src_token_to_word), np.asarray(tgt_token_to_word)
    if matrix.shape != (len(tgt), len(src)):
        raise ValueError(f"weights have shape {matrix.shape}, but the maps give ({len(tgt)}, {len(src)}) tokens")
    n_src, n_tgt = int(src.max(initial=-1)) + 1, int(tgt.max(initial=-1)) + 1
    by_source_word = np.zeros((len(tgt), n_src))  # [T_tgt, n_src]
    for token in np.flatnonzero(src >= 0):
        by_source_word[:, src[token]] += matrix[:, token]
    pooled = np.zeros((n_tgt, n_src))  # [n_tgt, n_src]
    for word in range(n_tgt):
        rows = by_source_word[tgt == word]
        if len(rows):
            pooled[word] = rows.mean(axis=0)
    return pooled


def attention_to_links(weights: Any, src_token_to_word: Sequence[int], tgt_token_to_word: Sequence[int]) -> list[Link]:
    """Each target word's most-attended source word, as links [(source word, target word), ...]."""
    pooled = pool_attention(weights, src_token_to_word, tgt_token_to_word)
    present = set(int(w) for w in tgt_token_to_word if w >= 0)
    return [(int(np.argmax(pooled[word])), word) for word in range(pooled.shape[0]) if word in present]


def random_head_links(src_token_to_word: Sequence[int], tgt_token_to_word: Sequence[int],
                      rng: np.random.Generator) -> list[Link]:
    """The links of a head that knows nothing: each target token's weights drawn uniformly from the simplex
    (Dirichlet(1)), then pooled like a real head's, so words of many tokens attract it as they would."""
    weights = rng.dirichlet(np.ones(len(src_token_to_word)), size=len(tgt_token_to_word))
    return attention_to_links(weights, src_token_to_word, tgt_token_to_word)


def token_to_word(text: str, token_bytes: Sequence[bytes]) -> list[int]:
    """The whitespace-split word each token of `text` belongs to; -1 for a token of spaces only.

    `token_bytes` are the UTF-8 bytes of each token in order (a char tokenizer: one character each; byte-level
    BPE: `Tokenizer.token_bytes(id)`, which may cut a character in two). A token takes the word of its first
    non-space byte (BPE's " dog" belongs to "dog").

    >>> token_to_word("El perro", [b"El", b" per", b"ro"])
    [0, 1, 1]
    """
    data = text.encode("utf-8")
    if b"".join(token_bytes) != data:
        raise ValueError("the tokens do not spell the text")
    word_of_byte: list[int] = []  # the word each byte of `data` is in, as str.split() cuts the text
    word, in_word = -1, False
    for char in text:
        space = char.isspace()
        if not space and not in_word:
            word += 1
        in_word = not space
        word_of_byte += [-1 if space else word] * len(char.encode("utf-8"))
    words, offset = [], 0
    for piece in token_bytes:
        owners = [w for w in word_of_byte[offset:offset + len(piece)] if w >= 0]
        words.append(owners[0] if owners else -1)
        offset += len(piece)
    return words


def _as_array(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor, perhaps on a GPU or needing grad
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=np.float64)


def _link_set(links: Iterable[Sequence[int]]) -> set[Link]:
    return {(int(source), int(target)) for source, target in links}


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} outputs for {len(b)} references")
