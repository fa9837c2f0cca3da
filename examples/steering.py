"""A steering vector in generate: add the difference of two prompts' residual streams.

The vector is blocks.{layer}.hook_resid_pre at the last token of --positive minus that of
--negative; a hook adds scale x vector at every position, in the prompt and in every generated
token. Prints the continuation without and with the vector, and draws how the next-token
log-odds of the two words move with the scale.

    PYTHONPATH=build/python python3 examples/steering.py ../shared/models/stories260K steering.png
"""

import argparse

import numpy as np

import longctx


def steering_vector(model, layer, positive, negative):
    name = f"blocks.{layer}.hook_resid_pre"
    acts = [model.run_with_cache(p, names_filter=name, pos_slice=slice(-1, None))[1][name]
            for p in (positive, negative)]
    return np.asarray(acts[0]).reshape(-1) - np.asarray(acts[1]).reshape(-1)


def steer_hook(layer, vector, scale):
    name = f"blocks.{layer}.hook_resid_pre"

    def add(act, hook):
        act += scale * vector  # in place, every position the call covers

    return (name, add)


def log_odds(model, prompt, word_a, word_b, hook):
    """log p(word_a) - log p(word_b) for the token after `prompt`."""
    base = model.to_tokens(prompt)
    ids = [int(model.to_tokens(prompt + w)[0, base.shape[1]]) for w in (word_a, word_b)]
    logits = model.run_with_hooks(base, fwd_hooks=[hook])[0, -1]
    return float(logits[ids[0]] - logits[ids[1]])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Hugging Face model folder")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--prompt", default="Once upon a time, there was a little girl. She was very")
    ap.add_argument("--positive", default="She was happy. She was very happy")
    ap.add_argument("--negative", default="She was sad. She was very sad")
    ap.add_argument("--layer", type=int, default=None, help="default: the middle layer")
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("-n", "--max-new-tokens", type=int, default=40)
    a = ap.parse_args()
    model = longctx.HookedTransformer.from_pretrained(a.model)
    layer = model.cfg.n_layers // 2 if a.layer is None else a.layer
    vec = steering_vector(model, layer, a.positive, a.negative)
    print(f"steering vector at blocks.{layer}.hook_resid_pre, norm {np.linalg.norm(vec):.2f}")
    for scale in (0.0, a.scale, -a.scale):
        text = model.generate(a.prompt, max_new_tokens=a.max_new_tokens,
                              fwd_hooks=[steer_hook(layer, vec, scale)])
        print(f"scale {scale:+.1f}: {text!r}")

    word_a, word_b = " " + a.positive.split()[-1], " " + a.negative.split()[-1]
    scales = np.linspace(-2 * a.scale, 2 * a.scale, 17)
    odds = [log_odds(model, a.prompt, word_a, word_b, steer_hook(layer, vec, s)) for s in scales]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    ax.plot(scales, odds, marker="o", ms=3)
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel(f"scale of the vector added to blocks.{layer}.hook_resid_pre")
    ax.set_ylabel(f"log p({word_a!r}) - log p({word_b!r})")
    ax.set_title(f"{model.cfg.model_name}: next token after {a.prompt!r}", fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out)
    plt.close(fig)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
