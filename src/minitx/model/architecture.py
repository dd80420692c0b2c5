"""An architecture answers for itself: what it reads, how its parts are named, which commands serve it.

The rest of minitx never compares an architecture's name (a test greps for it). It asks the object
the run's `arch` names (`registry.architecture(name)`), as it asks a positional kind its questions:

    reads_source    token windows of one stream (False), or a source sentence and its translation (True):
                    how its training data is read (dataset/), which input rules apply (model/inputs.py),
                    which form of eval / inspect-* runs
    stacks          its stacks of blocks and the names of their parts: the module path of the blocks and
                    the final norm, each block's attention modules ("attn"; "cross_attn" where a block reads
                    another sequence), and whether the stack is causal; the last stack is read out
    preset          the preset a fresh `minitx train --arch NAME` takes (None: the default preset)
    commands        the commands that serve it; any other refuses its run in one line (`registry.require_command`)
    hf_families     the transformers architectures it exports to (the positional kind picks one), or none
                    with `hf_refusal` saying why
    label, noun, use_instead, next_steps, description, shape(config)   how messages name it

Adding an architecture is one module (its `nn.Module` and an `Architecture` subclass with these
answers) and one line in `registry.ARCHITECTURES` (its name also in `config.Arch`, so --help needs no
torch): docs/architecture.md, "How to add an architecture". A test holds every registered architecture
to `REQUIRED_ANSWERS`.

    >>> from minitx.model.registry import architecture
    >>> gpt = architecture("gpt")
    >>> gpt.reads_source, [stack.name for stack in gpt.stacks], gpt.stacks[-1].blocks
    (False, ['decoder'], 'transformer.h')
    >>> [(s.name, s.attention) for s in architecture("encoder-decoder").stacks]
    [('encoder', ('attn',)), ('decoder', ('attn', 'cross_attn'))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from minitx.model.encoder_decoder import EncoderDecoder
from minitx.model.gpt import GPT

#: Every command that reads a run of some architecture; `Architecture.commands` is a subset (a test checks each
#: is a real `minitx` command).
RUN_COMMANDS = ("generate", "translate", "eval", "inspect-attention", "inspect-positions", "inspect-lens",
                "inspect-patch", "export", "experiment positions", "experiment attention")


@dataclass(frozen=True)
class Stack:
    """One stack of blocks, named as the model holds it.

    `name`: "decoder" (the stack whose stream becomes the logits) or "encoder"; `blocks` and `final_norm`: module
    paths inside the model (`model.get_submodule(path)`; the blocks a ModuleList, no final norm: None);
    `attention`: each block's attention modules, in the order grids show them; `causal`: a position sees only
    itself and earlier ones.
    """

    name: str
    blocks: str
    final_norm: str | None
    attention: tuple[str, ...]
    causal: bool

    def modules(self, model: nn.Module) -> tuple[list[nn.Module], nn.Module | None]:
        """(the blocks in order, the final norm or None) of this stack in `model`."""
        final_norm = model.get_submodule(self.final_norm) if self.final_norm is not None else None
        return list(model.get_submodule(self.blocks)), final_norm


class Architecture:
    """Base class: the answers an architecture gives; `REQUIRED_ANSWERS` have no default (a test checks them)."""

    #: `--arch`, config.json's `arch`, a member of config.Arch.
    name: ClassVar[str]
    #: The network: takes a ModelConfig; forward(*batch) -> (logits, loss).
    model_class: ClassVar[type[nn.Module]]
    #: One line for `minitx info` and the docs.
    description: ClassVar[str]
    #: How a refusal names a run of it, with its article: "a decoder-only (gpt)" [run].
    label: ClassVar[str]
    #: How a flag's message names it, with its article: "a decoder-only" [run].
    noun: ClassVar[str]
    #: Token windows (False) or source -> target pairs (True): see the module docstring.
    reads_source: ClassVar[bool]
    #: Its stacks, the one read out last.
    stacks: ClassVar[tuple[Stack, ...]]
    #: The output layer's module path.
    unembed: ClassVar[str] = "lm_head"
    #: The preset a fresh run takes when no --preset is given (None: config.DEFAULT_PRESET).
    preset: ClassVar[str | None]
    #: The commands (of RUN_COMMANDS) that serve a run of it.
    commands: ClassVar[frozenset[str]]
    #: What to run instead, in a refusal: "minitx translate RUN ...".
    use_instead: ClassVar[str]
    #: The line `minitx train` prints when it is done; `{run}` is the run directory.
    next_steps: ClassVar[str]
    #: The transformers architectures `minitx export` writes it as (its positional kind picks one); empty: none.
    hf_families: ClassVar[tuple[str, ...]]
    hf_refusal: ClassVar[str] = ""
    #: Whether MFU's FLOPs per token (training/mfu.py: a transformer's matmuls and attention) describe it; False:
    #: the training view shows no MFU rather than a wrong one (a recurrent model's FLOPs are counted otherwise).
    transformer_flops: ClassVar[bool] = True

    REQUIRED_ANSWERS: ClassVar[tuple[str, ...]] = (
        "name", "model_class", "description", "label", "noun", "reads_source", "stacks", "preset", "commands",
        "use_instead", "next_steps", "hf_families")

    def shape(self, config: Any) -> str:
        """One line giving the model's shape: "4 layers × 4 heads × 128 wide, block 128, pos learned"."""
        return (f"{config.n_layers} layers × {config.n_heads} heads × {config.dim} wide, block {config.block_size}, "
                f"pos {config.pos}")

    def block_counts(self, config: Any) -> tuple[int, int]:
        """(blocks of attention and MLP in all stacks, blocks that also cross-attend): what `model/memory.py`
        estimates a model's size from."""
        return config.n_layers, 0

    def stack(self, name: str) -> Stack:
        """The stack called `name` ("decoder", "encoder"); a KeyError naming the ones it has."""
        for stack in self.stacks:
            if stack.name == name:
                return stack
        raise KeyError(f"{self.name} has no {name!r} stack; it has {', '.join(s.name for s in self.stacks)}")

    @property
    def readout(self) -> Stack:
        """The stack whose stream becomes the logits (the last one)."""
        return self.stacks[-1]

    def has_stack(self, name: str) -> bool:
        return any(stack.name == name for stack in self.stacks)

    def serves(self, command: str) -> bool:
        """Does `command` ("minitx generate" or "generate") work on a run of this architecture?"""
        return command.removeprefix("minitx ") in self.commands

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"


class DecoderOnly(Architecture):
    """The GPT: one causal stack reading windows of a token stream (model/gpt.py)."""

    name = "gpt"
    model_class = GPT
    description = "decoder-only transformer (GPT): continues text"
    label = "a decoder-only (gpt)"
    noun = "a decoder-only"
    reads_source = False
    stacks = (Stack("decoder", "transformer.h", "transformer.ln_f", ("attn",), causal=True),)
    preset = None
    commands = frozenset({"generate", "eval", "inspect-attention", "inspect-positions", "inspect-lens",
                          "inspect-patch", "export", "experiment positions"})
    use_instead = "minitx generate RUN (a decoder-only run continues text; it does not translate)"
    next_steps = "minitx generate {run}    minitx eval {run}"
    hf_families = ("gpt2", "gpt_neox", "mpt")


class EncoderDecoderArchitecture(Architecture):
    """The encoder-decoder transformer: a bidirectional encoder reads the source, a decoder writes the target
    (model/encoder_decoder.py)."""

    name = "encoder-decoder"
    model_class = EncoderDecoder
    description = "encoder-decoder transformer: translates a source sentence"
    label = "an encoder-decoder"
    noun = "an encoder-decoder"
    reads_source = True
    stacks = (Stack("encoder", "encoder.blocks", "encoder.ln_f", ("attn",), causal=False),
              Stack("decoder", "decoder.blocks", "decoder.ln_f", ("attn", "cross_attn"), causal=True))
    preset = "translate"
    commands = frozenset({"translate", "eval", "inspect-attention", "inspect-lens", "inspect-patch",
                          "experiment positions", "experiment attention"})
    use_instead = 'minitx translate RUN "The red ball is big."'
    next_steps = 'minitx translate {run} "The red ball is big."'
    hf_families = ()
    hf_refusal = "minitx exports decoder-only models (GPT-2, GPT-NeoX, MPT); an encoder-decoder has no target yet"

    def block_counts(self, config: Any) -> tuple[int, int]:
        """The encoder's blocks and the decoder's; each decoder block also cross-attends."""
        return (config.encoder_layers or config.n_layers) + config.n_layers, config.n_layers

    def shape(self, config: Any) -> str:
        """"encoder 2 + decoder 2 layers × 4 heads × 128 wide, block 64, pos rope" (+ the encoder's own kind)."""
        encoder_pos = config.encoder_pos or config.pos
        return (f"encoder {config.encoder_layers or config.n_layers} + decoder {config.n_layers} layers × "
                f"{config.n_heads} heads × {config.dim} wide, block {config.block_size}, pos {config.pos}"
                + (f" (encoder {encoder_pos})" if encoder_pos != config.pos else ""))
