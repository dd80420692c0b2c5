"""From token ids to trained weights (the ids, the split and the batches come from minitx.dataset).

    setup.py     a run as `minitx train` builds it: corpus -> tokenizer -> ids -> model -> run directory
    loop.py      the optimisation loop: AdamW, warmup + cosine, evaluation, checkpoints, resume, Ctrl-C
"""
