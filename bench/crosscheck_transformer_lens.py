"""Cross-check the logit lens and one patching grid against TransformerLens, on the same model.

A learned-position run exported with `minitx export RUN --out DIR` is a GPT-2 folder; TransformerLens
(4.x: `TransformerBridge.boot_transformers(DIR)`, offline) loads it with its own hooks. Compared:

  lens      the stream before each block and after the last (`blocks.{l}.hook_resid_pre`,
            `blocks.{L-1}.hook_resid_post`) read out through its `ln_final` and `unembed`, against
            `minitx.inspect.lens.lens_logits`;
  patching  `transformer_lens.patching.get_act_patch_resid_pre` on one clean/corrupt agreement pair
            (the metric: logit difference), against the residual rows of
            `minitx.inspect.patching.patched_differences` at every (block input, position).

Both must agree within 1e-4. TransformerLens is not a dependency of minitx: run this where it is
installed (`pip install transformer_lens`), e.g.

    minitx export runs/story --out story-hf
    python bench/crosscheck_transformer_lens.py runs/story story-hf
"""

from __future__ import annotations

import argparse
import os

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a minitx run directory (learned positions)")
    ap.add_argument("export", help="the same run exported with `minitx export --out`")
    ap.add_argument("--prompt", default="The little dog sees the big red ball. The dog runs to the ball. The dog")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from transformer_lens import patching as tl_patching
    from transformer_lens.model_bridge import TransformerBridge

    from minitx.inspect.capture import prompt_ids
    from minitx.inspect.contrasts import phenomenon_contrasts
    from minitx.inspect.lens import lens_logits
    from minitx.inspect.patching import Place, patched_differences
    from minitx.rundir import load_model

    model, run = load_model(args.run, device="cpu")
    model.eval()
    bridge = TransformerBridge.boot_transformers(args.export, device="cpu")
    bridge.eval()
    n_layers = model.config.n_layers

    ids = torch.tensor([prompt_ids(run.tokenizer, args.prompt)])
    ours, _ = lens_logits(model, ids)  # [P, 1, T, V]
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids)
        names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
        names.append(f"blocks.{n_layers - 1}.hook_resid_post")
        theirs = torch.stack([bridge.unembed(bridge.ln_final(cache[name])) for name in names])
    lens_gap = float((ours - theirs.float()).abs().max())
    print(f"lens: {len(names)} points × {ids.shape[1]} positions; max |Δ logit| minitx vs TransformerLens = "
          f"{lens_gap:.2e}")

    contrast = phenomenon_contrasts(run.tokenizer, "agreement_far", 1, model.config.block_size)[0][0]
    clean, corrupt = torch.tensor([contrast.clean]), torch.tensor([contrast.corrupt])
    good, bad = contrast.good, contrast.bad
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, good] - logits[0, -1, bad]

    tl_grid = tl_patching.get_act_patch_resid_pre(bridge, corrupt, clean_cache, metric)  # [L, T]
    length = len(contrast.clean)
    relabelled = type(contrast)(contrast.clean, contrast.corrupt, good, bad, [str(t) for t in range(length)])
    places = [Place("resid", layer, label=str(t)) for layer in range(n_layers) for t in range(length)]
    our_grid = torch.tensor(patched_differences(model, [relabelled], places)[0]).view(n_layers, length)
    patch_gap = float((our_grid - tl_grid.double()).abs().max())
    print(f"patching: resid_pre × position grid {n_layers} × {length} on {contrast.clean_text!r} vs "
          f"{contrast.corrupt_text!r}; max |Δ logit difference| = {patch_gap:.2e}")
    ok = lens_gap <= 1e-4 and patch_gap <= 1e-4
    print("agree within 1e-4" if ok else "DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
