"""Tokenizers across the border: minitx's tokenizer.json is already a Hugging Face `tokenizers` file.

Export. minitx saves both of its kinds (byte-level BPE and char) in the `tokenizers` JSON format,
so the file goes out unchanged; what transformers' `AutoTokenizer` needs besides is a
tokenizer_config.json that names the class and the special tokens:

    tokenizer.json            the same file as in the run directory
    tokenizer_config.json     {"tokenizer_class": "PreTrainedTokenizerFast",
                               "bos_token": "<|doc|>", "eos_token": "<|doc|>",
                               "clean_up_tokenization_spaces": false, ...}

`<|doc|>` starts every training document, so it is both the beginning-of-text token (fed first)
and the end-of-text token (`generate` stops at it, as `minitx generate` does).
`clean_up_tokenization_spaces` must be off: it would turn "a ." into "a." when decoding, and
decode(encode(s)) == s is a promise minitx keeps.

Import. A GPT-2-family checkpoint has either a tokenizer.json (read as it is) or the older pair
vocab.json + merges.txt, which is the same byte-level BPE written as two files:

    vocab.json    {"!": 0, "\\"": 1, ..., "Ġthe": 262, ..., "<|endoftext|>": 50256}
    merges.txt    "Ġ t" / "Ġ a" / "h e" ...  one learned merge per line, in order

and is rebuilt here into one tokenizer.json. Special tokens named in tokenizer_config.json or
special_tokens_map.json (e.g. "<|endoftext|>") stay single tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minitx.errors import UserError
from minitx.fileio import read_json
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
VOCAB_JSON = "vocab.json"
MERGES_TXT = "merges.txt"


def boundary_token(tokenizer: Tokenizer) -> str | None:
    """The token that starts and ends a document: `<|doc|>` if the tokenizer has it, else its first special token."""
    if DOC_TOKEN in tokenizer.special_tokens:
        return DOC_TOKEN
    return tokenizer.special_tokens[0] if tokenizer.special_tokens else None


def tokenizer_files(tokenizer: Tokenizer, max_length: int) -> dict[str, str]:
    """The files `AutoTokenizer.from_pretrained` reads: {"tokenizer.json": ..., "tokenizer_config.json": ...}."""
    boundary = boundary_token(tokenizer)
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": boundary,
        "eos_token": boundary,
        "clean_up_tokenization_spaces": False,  # decoding must give back exactly the text
        "model_max_length": max_length,
    }
    return {
        TOKENIZER_JSON: tokenizer.to_json_str() + "\n",
        TOKENIZER_CONFIG: json.dumps(config, indent=2, ensure_ascii=False) + "\n",
    }


def read_hf_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer of a Hugging Face checkpoint directory, as a minitx Tokenizer (UserError if there is none)."""
    directory = Path(directory)
    if (directory / TOKENIZER_JSON).is_file():
        text = (directory / TOKENIZER_JSON).read_text(encoding="utf-8")
        return Tokenizer.from_json_str(text, source=str(directory / TOKENIZER_JSON))
    if (directory / VOCAB_JSON).is_file() and (directory / MERGES_TXT).is_file():
        return _from_vocab_and_merges(directory)
    raise UserError(
        f"{directory} has no tokenizer: it needs {TOKENIZER_JSON}, or {VOCAB_JSON} + {MERGES_TXT} "
        "(a GPT-2-family checkpoint has them beside config.json)"
    )


def _special_token_names(directory: Path) -> list[str]:
    """Special tokens named in tokenizer_config.json / special_tokens_map.json ("<|endoftext|>" for GPT-2)."""
    names: list[str] = []
    for filename in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
        path = directory / filename
        if not path.is_file():
            continue
        spec = read_json(path, "fix or remove it")
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            value = spec.get(key)
            value = value.get("content") if isinstance(value, dict) else value  # {"content": "<|endoftext|>", ...}
            if isinstance(value, str) and value and value not in names:
                names.append(value)
    return names


def _from_vocab_and_merges(directory: Path) -> Tokenizer:
    """Byte-level BPE from vocab.json + merges.txt, configured as minitx configures its own."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    try:
        bpe = models.BPE.from_file(str(directory / VOCAB_JSON), str(directory / MERGES_TXT))
    except Exception as err:  # tokenizers raises a bare Exception for malformed files
        raise UserError(f"{directory}: {VOCAB_JSON} + {MERGES_TXT} are not a BPE vocabulary ({err})") from None
    hf = HFTokenizer(bpe)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    vocab = hf.get_vocab()
    specials = [name for name in _special_token_names(directory) if name in vocab]
    if specials:
        hf.add_special_tokens(specials)  # already in the vocabulary: they keep their ids
    return Tokenizer.from_json_str(hf.to_str(), source=str(directory / VOCAB_JSON))
