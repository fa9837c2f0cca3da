"""Logit lens: what each layer's residual stream would predict.

The residual stream after each block is read through the model's own final norm and output head:
for layer l, blocks.{L-1}.hook_resid_post is replaced by blocks.{l}.hook_resid_post of the same
prompt, so the logits the engine returns are unembed(ln_final(resid_post_l)) at every position
(exact for tied and untied heads, any weight dtype).

    PYTHONPATH=build/python python3 examples/logit_lens.py ../shared/models/stories260K lens.png
"""

import argparse

import numpy as np

import longctx


def logit_lens(model, prompt):
    """Returns (tokens [1,pos], log-probabilities [n_layers, pos, d_vocab])."""
    tokens = model.to_tokens(prompt)
    n_layers, n = model.cfg.n_layers, tokens.shape[1]
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_resid_post"))
    last = f"blocks.{n_layers - 1}.hook_resid_post"
    out = np.empty((n_layers, n, model.cfg.d_vocab), dtype=np.float32)
    for layer in range(n_layers):
        resid = cache[f"blocks.{layer}.hook_resid_post"]

        def read_layer(act, hook, resid=resid):
            return resid[:, np.arange(n)[hook.pos]]  # the rows of this call's positions

        logits = model.run_with_hooks(tokens, fwd_hooks=[(last, read_layer)])[0]
        logits = logits - logits.max(axis=-1, keepdims=True)
        out[layer] = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return tokens, out


def draw(model, tokens, logprobs, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n, _ = logprobs.shape
    top = logprobs.argmax(axis=-1)
    prob = np.exp(logprobs.max(axis=-1))
    inputs = model.to_str_tokens(tokens)
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * n + 2), 0.55 * n_layers + 1.8), dpi=80)
    im = ax.imshow(prob, aspect="auto", cmap="Blues", vmin=0, vmax=1, origin="lower")
    for l in range(n_layers):
        for p in range(n):
            s = model.to_string(top[l, p:p + 1]).replace("\n", "\\n")
            ax.text(p, l, s, ha="center", va="center", fontsize=7,
                    color="white" if prob[l, p] > 0.6 else "black")
    ax.set_xticks(range(n))
    ax.set_xticklabels([repr(t)[1:-1] for t in inputs], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_layers))
    ax.set_yticklabels([f"resid_post {l}" for l in range(n_layers)], fontsize=7)
    ax.set_xlabel("input token (the prediction is for the next one)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="probability of the top token")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Hugging Face model folder")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--prompt", default="Once upon a time, there was a little girl named Lily. She")
    a = ap.parse_args()
    model = longctx.HookedTransformer.from_pretrained(a.model)
    tokens, logprobs = logit_lens(model, a.prompt)
    top = logprobs[:, -1].argmax(axis=-1)
    for layer in range(model.cfg.n_layers):
        print(f"layer {layer}: next token {model.to_string(top[layer:layer + 1])!r} "
              f"p={np.exp(logprobs[layer, -1].max()):.3f}")
    draw(model, tokens, logprobs, a.out, f"Logit lens: {model.cfg.model_name}")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
