"""From token ids to trained weights.

    batches.py   the train/validation split of the token stream, random next-token windows
    setup.py     a run as `minitx train` builds it: corpus -> tokenizer -> ids -> model -> run directory
    loop.py      the optimisation loop: AdamW, warmup + cosine, evaluation, checkpoints, resume, Ctrl-C
"""
