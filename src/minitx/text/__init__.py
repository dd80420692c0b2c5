"""Text in, token ids out: the first room of the pipeline.

    special.py    DOC_TOKEN, the document marker every story starts with
    files.py      the one reader of UTF-8 text (corpus files, stdin); the tiny Shakespeare download
    tokenizer.py  byte-level BPE and char tokenizers behind one `Tokenizer` (tokenizer.json)
    display.py    how a tokenizer cuts text, as coloured spans with their ids
"""
