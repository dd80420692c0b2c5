"""The token cache: `minitx train CORPUS...` prepares a corpus once and reuses the token files after.

An entry is a prepared data directory (see store.py) under the cache root -- `$MINITX_CACHE`, else
the platform's user cache directory (`~/.cache/minitx` on Linux, `~/Library/Caches/minitx` on macOS) --
named by a hash of what decides the tokens:

    key = sha256(the sources' absolute paths, the tokenizer, --val-fraction, --text-field, format)

where "the tokenizer" is the sha256 of a given tokenizer.json, or the recipe of one trained on the
corpus ("bpe 1024", "char": the entry then holds the trained tokenizer too, so a second run skips
training it). An entry is fresh while every source is unchanged: same size and modification time, or
-- if only the time changed (`touch`, a copy) -- the same sha256. A stale entry is prepared again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer
from minitx.tokens import store
from minitx.tokens.prepare import Progress, prepare, tokenizer_sha256
from minitx.tokens.sources import Source, file_changed, resolve
from minitx.tokens.vocab import train_tokenizer

CACHE_ENV = "MINITX_CACHE"


def cache_root() -> Path:
    """Where prepared corpora are cached: $MINITX_CACHE, else the user cache directory + /minitx."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("minitx", appauthor=False))


@dataclass
class CachedCorpus:
    """A prepared corpus found in (or just added to) the cache."""

    data: store.PreparedData
    reused: bool


def is_fresh(path: Path, sources: list[Source]) -> bool:
    """Does the entry at `path` hold exactly these sources, none of them changed since?"""
    try:
        meta = store.read_meta(path)
    except UserError:
        return False
    recorded = meta.get("sources", [])
    if [r.get("path") for r in recorded] != [resolve(s.path) for s in sources]:
        return False
    return not any(file_changed(record) for record in recorded)


def _holds(path: Path, sources: list[Source], tokenizer_sha256: str, val_fraction: float, text_field: str) -> bool:
    """Is `path` fresh prepared data of these sources, made with this tokenizer, split and text field?"""
    if not is_fresh(path, sources):
        return False
    meta = store.read_meta(path)
    return (meta["tokenizer_sha256"], meta["val_fraction"], meta["text_field"]) == (tokenizer_sha256, val_fraction,
                                                                                   text_field)


def cache_key(sources: list[Source], tokenizer_identity: str, val_fraction: float, text_field: str) -> str:
    recipe = {"sources": [resolve(s.path) for s in sources], "tokenizer": tokenizer_identity,
              "val_fraction": val_fraction, "text_field": text_field, "format": store.FORMAT}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def prepared_corpus(
    sources: list[Source],
    *,
    tokenizer: str | Tokenizer | None,
    vocab_size: int,
    val_fraction: float,
    text_field: str = "text",
    show_progress: bool = False,
    progress: Callable[[], AbstractContextManager[Progress | None]] | None = None,
    on_prepare: Callable[[str], None] | None = None,
    prefer: Path | None = None,
) -> CachedCorpus:
    """The prepared tokens of `sources` from the cache, preparing them first if they are missing or stale.

    `tokenizer`: a Tokenizer, a tokenizer.json path, 'char' (a char tokenizer of the corpus) or None (a BPE
    of `vocab_size` trained on the corpus). `on_prepare` is called with a line to show before a (slow)
    prepare starts; `progress` makes the context (a progress bar) the prepare runs in. `prefer`: a prepared
    directory to use if it holds these unchanged sources encoded by `tokenizer` (a resumed run's own data,
    whatever cache key it was prepared under).
    """
    if any(not s.cacheable for s in sources):
        raise UserError("minitx train cannot cache stdin; prepare it first: minitx prepare - --out DATA_DIR, "
                        "then minitx train DATA_DIR")
    given = Tokenizer.load(tokenizer) if tokenizer not in (None, "char") and isinstance(tokenizer, str) else tokenizer
    if isinstance(given, Tokenizer):
        identity = tokenizer_sha256(given)
    else:
        given, identity = None, tokenizer or f"bpe {vocab_size}"
    if given is not None:
        # The same tokenizer may have been trained into another entry ("bpe 1024", "char"): a resumed run,
        # or the other ranks of a distributed run, which receive rank 0's tokenizer.
        trained = [cache_root() / cache_key(sources, recipe, val_fraction, text_field)
                   for recipe in (f"bpe {vocab_size}", "char")]
        for candidate in [p for p in (prefer, *trained) if p is not None]:
            if _holds(candidate, sources, identity, val_fraction, text_field):
                return CachedCorpus(store.open_prepared(candidate), reused=True)
    entry = cache_root() / cache_key(sources, identity, val_fraction, text_field)
    if is_fresh(entry, sources):
        return CachedCorpus(store.open_prepared(entry), reused=True)
    if on_prepare is not None:
        on_prepare(f"preparing the corpus into the token cache {entry}")
    tokenizer = given
    if tokenizer is None:
        tokenizer, _ = train_tokenizer(sources, kind="char" if identity == "char" else "bpe",
                                       vocab_size=vocab_size, special_tokens=(DOC_TOKEN,),
                                       text_field=text_field, show_progress=show_progress)
    with progress() if progress is not None else nullcontext() as bar:  # a progress bar while it runs
        prepare(sources, tokenizer, entry, val_fraction=val_fraction, text_field=text_field, force=True,
                progress=bar)
    return CachedCorpus(store.open_prepared(entry), reused=False)
