"""What a run trains on: a prepared data directory, a corpus prepared through the token cache, or the built-in stories.

`minitx train` accepts three forms, and each ends as a tokenizer and the train / validation id streams:

    minitx train DATA_DIR          the token files of `minitx prepare`, memory-mapped; DATA_DIR's tokenizer
    minitx train CORPUS...         files, directories, globs, .jsonl, .parquet: prepared once into the
                                   token cache (tokens/cache.py), reused by every later run
    minitx train                   the built-in stories (2 MB), generated and encoded in memory as always
    ... --arch encoder-decoder     sentence pairs instead: one FILE.jsonl, or the built-in pairs (pairs.py)

The run records which data it used (`TrainingData.record`): the name of the corpus, its files, its size,
the sha256 of its text -- `--resume` refuses different text -- and the prepared directory it read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minitx.dataset.batches import TokenSplit, split_prepared, split_train_val
from minitx.errors import UserError
from minitx.text.special import DOC_TOKEN

if TYPE_CHECKING:
    import numpy as np

    from minitx.dataset.pairs import PairData
    from minitx.text.tokenizer import Tokenizer
    from minitx.tokens.store import PreparedData


@dataclass
class TrainingData:
    """A tokenizer and the tokens of one corpus, and what a run records about them."""

    tokenizer: Tokenizer
    source: str  # a name for the corpus: the paths given, or "built-in stories"
    files: list[str]  # what to pass again on --resume (absolute paths); [] for the built-in stories
    text_bytes: int
    text_sha256: str
    prepared: PreparedData | None = None  # the token files, if the corpus was prepared
    ids: np.ndarray | None = None  # the built-in stories' ids, in memory
    notes: list[str] = field(default_factory=list)

    def split(self, block_size: int, val_fraction: float, doc_aligned: bool) -> TokenSplit:
        """Train and validation streams for windows of `block_size` (document starts if `doc_aligned`)."""
        if self.prepared is not None:
            return split_prepared(self.prepared, block_size, doc_aligned)
        doc_id = self.tokenizer.token_id(DOC_TOKEN) if doc_aligned else None
        return split_train_val(self.ids, self.text_bytes, block_size, val_fraction, doc_id=doc_id)

    def record(self) -> dict[str, Any]:
        """The corpus fields of a run's TrainConfig."""
        return {"corpus": self.source, "corpus_files": self.files, "corpus_bytes": self.text_bytes,
                "corpus_sha256": self.text_sha256,
                "prepared_data": str(self.prepared.path.resolve()) if self.prepared is not None else None}


def is_data_dir(files: list[str | Path]) -> bool:
    """Is the one argument given a prepared data directory (`minitx prepare --out`)?"""
    from minitx.tokens.store import is_prepared_dir

    return len(files) == 1 and is_prepared_dir(files[0])


def load_training_data(
    files: list[str | Path],
    *,
    tokenizer: str | Tokenizer | None,
    vocab_size: int,
    val_fraction: float,
    val_fraction_given: bool = False,
    prepared_hint: str | None = None,
    text_field: str = "text",
    show_progress: bool = False,
    notify: Callable[[str], None] | None = None,
    prepare_progress: Callable[[], AbstractContextManager[Any]] | None = None,
    arch: str = "gpt",
    pair_fields: tuple[str, str] = ("source", "target"),
) -> TrainingData | PairData:
    """The tokenizer and tokens for `minitx train FILES` (see the module docstring for the three forms).

    `tokenizer`: --tokenizer (a path or 'char'), a run's own Tokenizer (--resume), or None (train a BPE of
    `vocab_size`). `prepared_hint`: the prepared data a resumed run used, tried first. `notify` receives
    one-line messages for the user ("reusing the prepared tokens in ..."); `prepare_progress` makes the
    progress display a prepare runs in. An `arch` that reads a source sentence (its `reads_source`, e.g.
    the encoder-decoder) reads sentence pairs instead (pairs.py): the built-in ones, or one JSON Lines file
    with the `pair_fields` (source, target).
    """
    from minitx.model.registry import architecture

    if architecture(arch).reads_source:
        from minitx.dataset.pairs import load_pair_data

        def make_tokenizer(text: str) -> Tokenizer:
            if isinstance(tokenizer, str | None):
                return build_tokenizer(tokenizer, text, vocab_size, show_progress)
            return tokenizer  # a resumed run's own

        return load_pair_data(files, make_tokenizer=make_tokenizer, val_fraction=val_fraction,
                              source_field=pair_fields[0], target_field=pair_fields[1])
    notify = notify or (lambda line: None)
    if not files:
        return _builtin_stories(tokenizer, vocab_size, show_progress)
    if is_data_dir(files):
        return _data_dir(Path(files[0]), tokenizer, val_fraction if val_fraction_given else None, notify)
    return _cached_corpus(files, tokenizer, vocab_size, val_fraction, text_field, prepared_hint, show_progress,
                          notify, prepare_progress)


def _builtin_stories(tokenizer: str | Tokenizer | None, vocab_size: int, show_progress: bool) -> TrainingData:
    import numpy as np

    from minitx.corpus.sources import load_training_text

    text, source = load_training_text([])
    data = text.encode("utf-8")
    tok = tokenizer if not isinstance(tokenizer, str | None) else build_tokenizer(tokenizer, text, vocab_size,
                                                                                   show_progress)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    return TrainingData(tok, source, [], len(data), hashlib.sha256(data).hexdigest(), ids=ids)


def build_tokenizer(spec: str | None, text: str, vocab_size: int, show_progress: bool) -> Tokenizer:
    """`--tokenizer PATH` loads one, `char` builds a character tokenizer, None trains a BPE on `text`."""
    from minitx.text.tokenizer import Tokenizer

    if spec == "char":
        return Tokenizer.train_char(text)
    if spec:
        return Tokenizer.load(spec)
    return Tokenizer.train_bpe([text], vocab_size=vocab_size, show_progress=show_progress)


def _data_dir(path: Path, tokenizer: str | Tokenizer | None, val_fraction: float | None,
              notify: Callable[[str], None]) -> TrainingData:
    from minitx.tokens.store import open_prepared

    data = open_prepared(path)
    own = data.tokenizer()
    if isinstance(tokenizer, str):
        raise UserError(f"{path} was prepared with its own tokenizer; drop --tokenizer (or prepare the corpus "
                        f"again with --tokenizer {tokenizer})")
    if tokenizer is not None and tokenizer.to_json_str() != own.to_json_str():
        raise UserError(f"{path} holds tokens of another tokenizer than this run's; resume with the data it was "
                        "trained on")
    if val_fraction is not None and val_fraction != data.meta["val_fraction"]:
        raise UserError(f"{path} holds out --val-fraction {data.meta['val_fraction']:g} of its tokens; drop "
                        f"--val-fraction or prepare it again with --val-fraction {val_fraction:g}")
    notify(f"training on the prepared tokens in {path}: {data.meta['tokens']['total']:,} tokens, memory-mapped")
    files = [str(path.resolve())]
    return TrainingData(own, str(path), files, data.meta["text_bytes"], data.meta["text_sha256"], prepared=data)


def _cached_corpus(files: list[str | Path], tokenizer: str | Tokenizer | None, vocab_size: int, val_fraction: float,
                   text_field: str, prepared_hint: str | None, show_progress: bool, notify: Callable[[str], None],
                   prepare_progress: Callable[[], AbstractContextManager[Any]] | None) -> TrainingData:
    from minitx.tokens.cache import prepared_corpus
    from minitx.tokens.sources import expand_sources

    sources = expand_sources(files)
    found = prepared_corpus(sources, tokenizer=tokenizer, vocab_size=vocab_size, val_fraction=val_fraction,
                            text_field=text_field,
                            show_progress=show_progress, on_prepare=notify, progress=prepare_progress,
                            prefer=Path(prepared_hint) if prepared_hint else None)
    data = found.data
    if found.reused:
        notify(f"reusing the prepared tokens in {data.path} ({data.meta['tokens']['total']:,} tokens; the corpus "
               "is unchanged)")
    source = ", ".join(str(f) for f in files)
    resolved = [record["path"] for record in data.meta["sources"]]
    return TrainingData(data.tokenizer(), source, resolved, data.meta["text_bytes"], data.meta["text_sha256"],
                        prepared=data)
