"""Activation patching of resid_pre over every layer and position.

A clean and a corrupted prompt differ in one name, which the model repeats after "One day,".
For each layer l and position p, blocks.{l}.hook_resid_pre of the corrupted run is replaced at p
by the clean run's, and the metric (the logit difference of the two names, normalized so that 0
is the corrupted run and 1 the clean run) is read: TransformerLens' get_act_patch_resid_pre
result, laid out [n_layers, pos].

    PYTHONPATH=build/python python3 examples/activation_patching.py ../shared/models/stories260K patching.png
"""

import argparse

import numpy as np

import longctx

CLEAN = "Once upon a time, there was a little boy named Tim. One day,"
CORRUPTED = "Once upon a time, there was a little boy named Lily. One day,"
ANSWER, WRONG = " Tim", " Lily"


def get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, patching_metric):
    """[n_layers, pos]: patching_metric(logits) with resid_pre of one (layer, position) patched."""
    n_layers, n = model.cfg.n_layers, corrupted_tokens.shape[-1]
    out = np.zeros((n_layers, n), dtype=np.float64)
    for layer in range(n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        clean = clean_cache[name]
        for pos in range(n):
            def patch(act, hook, clean=clean, pos=pos):
                rows = np.arange(n)[hook.pos]  # the positions this call covers
                hit = np.nonzero(rows == pos)[0]
                if hit.size:
                    act[0, hit[0]] = clean[0, pos]  # in place

            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, patch)])
            out[layer, pos] = patching_metric(logits)
    return out


def next_token_id(model, prompt, continuation):
    """The first token of `continuation` as it tokenizes after `prompt`."""
    base = model.to_tokens(prompt)[0]
    full = model.to_tokens(prompt + continuation)[0]
    if full.shape[0] <= base.shape[0] or not np.array_equal(full[:base.shape[0]], base):
        raise SystemExit(f"{continuation!r} does not tokenize as a continuation of {prompt!r}")
    return int(full[base.shape[0]])


def logit_diff_metric(answer_id, wrong_id, clean_logits, corrupted_logits):
    """The normalized logit difference: 0 at the corrupted run, 1 at the clean run."""
    def diff(logits):
        last = np.asarray(logits)[0, -1]
        return float(last[answer_id] - last[wrong_id])

    lo, hi = diff(corrupted_logits), diff(clean_logits)
    return lambda logits: (diff(logits) - lo) / (hi - lo)


def run(model, clean=CLEAN, corrupted=CORRUPTED, answer=ANSWER, wrong=WRONG):
    """Returns (corrupted tokens, the [n_layers, pos] result)."""
    clean_tokens, corrupted_tokens = model.to_tokens(clean), model.to_tokens(corrupted)
    if clean_tokens.shape != corrupted_tokens.shape:
        raise SystemExit(f"the prompts tokenize to {clean_tokens.shape[1]} and "
                         f"{corrupted_tokens.shape[1]} tokens; patching needs equal lengths")
    clean_logits, clean_cache = model.run_with_cache(
        clean_tokens, names_filter=lambda name: name.endswith("hook_resid_pre"))
    corrupted_logits = model(corrupted_tokens)
    metric = logit_diff_metric(next_token_id(model, clean, answer), next_token_id(model, clean, wrong),
                               clean_logits, corrupted_logits)
    return corrupted_tokens, get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)


def draw(model, tokens, result, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n = result.shape
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * n + 2), 0.5 * n_layers + 1.8), dpi=80)
    lim = max(1.0, float(np.abs(result).max()))
    im = ax.imshow(result, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    ax.set_xticks(range(n))
    ax.set_xticklabels([repr(t)[1:-1] for t in model.to_str_tokens(tokens)], rotation=60,
                       ha="right", fontsize=7)
    ax.set_yticks(range(n_layers))
    ax.set_ylabel("layer (resid_pre)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="normalized logit difference")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Hugging Face model folder")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--clean", default=CLEAN)
    ap.add_argument("--corrupted", default=CORRUPTED)
    ap.add_argument("--answer", default=ANSWER)
    ap.add_argument("--wrong", default=WRONG)
    a = ap.parse_args()
    model = longctx.HookedTransformer.from_pretrained(a.model)
    tokens, result = run(model, a.clean, a.corrupted, a.answer, a.wrong)
    np.set_printoptions(precision=2, suppress=True, linewidth=160)
    print(result)
    draw(model, tokens, result,
         a.out, f"resid_pre patching, clean {a.clean!r}\ninto {a.corrupted!r}, "
                f"metric logit({a.answer!r}) - logit({a.wrong!r})")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
