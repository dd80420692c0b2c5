"""The commands: each module loads what its command needs, picks the device, calls the library and prints.

Library packages (text, model, training, generation, evaluation, inspect) compute and return values;
only this layer talks to the user. `cli.py` declares the flags and calls one function here.
"""
