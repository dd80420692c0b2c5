"""The special tokens minitx gives meaning to.

`DOC_TOKEN` starts every document: the built-in corpus is `"<|doc|>" + story + "\\n"` repeated,
tokenizers keep it as one token, and generation feeds it first so an empty prompt starts a story.
It also gives every window a fixed first token, which lets a model without positional encoding
count positions through the causal mask.
"""

DOC_TOKEN = "<|doc|>"
