"""From a trained model to new text.

    sampling.py   temperature, top-k, top-p; decoding with a KV cache; the sliding window past the block
    streaming.py  following a sample token by token: stop strings, streaming only text that is final
"""
