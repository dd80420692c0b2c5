"""Text in, token ids out: the first room of the pipeline.

    special.py    DOC_TOKEN, the document marker every story starts with
    files.py      reading corpus files safely (UTF-8, not binary, not empty); the tiny Shakespeare download
    tokenizer.py  byte-level BPE and char tokenizers behind one `Tokenizer` (tokenizer.json)
    display.py    how a tokenizer cuts text, as coloured spans with their ids
"""
