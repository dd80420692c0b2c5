"""Into the ecosystem: minitx models to and from Hugging Face transformers, exactly and without pickle.

hf_export.py     a minitx model as GPT-2, GPT-NeoX or MPT weights + config (which kind goes where, and why)
hf_import.py     a GPT-2-family checkpoint folder as a minitx model (the inverse renaming)
hf_checkpoint.py finding and reading a checkpoint folder: safetensors only, never a pickle
hf_tokenizer.py  tokenizer files both ways (minitx's tokenizer.json is already in `tokenizers` format)

Nothing here imports transformers: the files are plain safetensors and JSON, which transformers
reads. Only the tests (and the user) run transformers, to check the two sides compute the same.
"""
