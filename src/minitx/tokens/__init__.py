"""Corpora of any size as prepared token files: streamed in, encoded on every core, memory-mapped out.

    sources.py   CORPUS arguments -> files, directories, globs, stdin, JSON Lines, Parquet, gzip -> text blocks
    prepare.py   text blocks -> ids (exactly those of encoding the whole text) -> train.bin / val.bin
    store.py     the prepared directory's layout and meta.json; reading it back through np.memmap
    vocab.py     training a tokenizer on a stream (all of it, or --max-bytes of it)
    cache.py     `minitx train CORPUS` prepares once into the cache and reuses the tokens after

`minitx prepare` and `minitx train DATA_DIR` are the commands on top (commands/prepare.py, training/).
"""
