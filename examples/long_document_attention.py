"""Where the last query of a long document looks: exact attention rows and per-key attention mass.

Runs a document of --length tokens (default 32768) once, keeping only what the question needs:
blocks.*.attn.hook_pattern for the last query (pattern_queries=[-1], exact softmax rows over every
key), and blocks.*.attn.pattern_key_mass summed over the last --queries queries (pos_slice), never
a context x context tensor. Memory stays that of a plain prefill. Draws the last query's attention
(mean over heads) per layer, and the key mass over the document.

    longctx random-model --preset smollm2-135m --dtype bf16 --max-pos 32768 -o /tmp/smollm2
    PYTHONPATH=build/python python3 examples/long_document_attention.py /tmp/smollm2 keymass.png
"""

import argparse
import time

import numpy as np

import longctx

TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park with her dog Max. One day, they found a big red ball under a tree. Lily and Max "
        "played with the ball all day, and when the sun went down they went home happy.\n")


def document_tokens(model, length, text=TEXT):
    """The first `length` tokens of `text` repeated (BOS first)."""
    once = model.to_tokens(text, prepend_bos=False)[0]
    full = model.to_tokens(text)[0]
    bos = full[:full.shape[0] - once.shape[0]]
    reps = -(-(length - bos.shape[0]) // once.shape[0])
    return np.concatenate([bos, np.tile(once, reps)])[:length][None].astype(np.int64)


def last_query_attention(model, tokens, n_queries=64):
    """(pattern [n_layers, n_heads, key_pos] of the last query,
        key mass [n_layers, n_heads, key_pos] summed over the last n_queries queries)."""
    names = lambda name: name.endswith("attn.hook_pattern") or name.endswith("attn.pattern_key_mass")
    _, cache = model.run_with_cache(tokens, names_filter=names, pos_slice=slice(-n_queries, None),
                                    pattern_queries=[-1], return_type=None)
    L = model.cfg.n_layers
    pattern = np.stack([np.asarray(cache[f"blocks.{l}.attn.hook_pattern"])[0, :, 0] for l in range(L)])
    mass = np.stack([np.asarray(cache[f"blocks.{l}.attn.pattern_key_mass"])[0] for l in range(L)])
    return pattern, mass


def _bins(x, n_bins):
    """Sums x [..., key_pos] over n_bins equal ranges of keys."""
    edges = np.linspace(0, x.shape[-1], n_bins + 1).astype(int)
    return np.add.reduceat(x, edges[:-1], axis=-1), edges


def draw(pattern, mass, n_queries, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    n_layers, _, n = pattern.shape
    n_bins = min(n, 256)
    heat, edges = _bins(pattern.mean(axis=1), n_bins)  # mean over heads, summed per bin
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(9, 6.5), dpi=80, sharex=True,
                                 gridspec_kw={"height_ratios": [3, 2]})
    fig.subplots_adjust(left=0.09, right=0.87, top=0.94, bottom=0.08, hspace=0.12)
    pos = heat[heat > 0]
    lo = max(float(pos.min()) if pos.size else 1e-9, float(heat.max()) * 1e-6, 1e-12)
    hi = max(float(heat.max()), lo * 10)
    im = a0.imshow(np.maximum(heat, lo), aspect="auto", origin="lower", cmap="magma",
                   norm=LogNorm(vmin=lo, vmax=hi), extent=(0, n, -0.5, n_layers - 0.5),
                   interpolation="nearest")
    a0.set_ylabel("layer")
    a0.set_title(title, fontsize=9)
    box = a0.get_position()
    cax = fig.add_axes([box.x1 + 0.015, box.y0, 0.015, box.height])
    fig.colorbar(im, cax=cax, label=f"last query's attention per {n / n_bins:.0f} keys")
    mid = (edges[:-1] + edges[1:]) / 2
    km, _ = _bins(mass.sum(axis=1), n_bins)  # summed over heads
    for l in sorted({0, n_layers // 2, n_layers - 1}):
        a1.plot(mid, np.maximum(km[l], 1e-9), lw=1, label=f"layer {l}")
    a1.set_yscale("log")
    a1.set_xlim(0, n)
    a1.set_xlabel("key position")
    a1.set_ylabel(f"key mass from the\nlast {n_queries} queries (all heads)")
    a1.legend(fontsize=8)
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Hugging Face model folder")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--length", type=int, default=32768, help="document tokens (default 32768)")
    ap.add_argument("--file", help="document text (default: a short story, repeated)")
    ap.add_argument("--queries", type=int, default=64, help="queries of the key mass (default 64)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    model = longctx.HookedTransformer.from_pretrained(a.model, n_ctx=a.length, threads=a.threads)
    text = open(a.file, encoding="utf-8").read() if a.file else TEXT
    tokens = document_tokens(model, a.length, text)
    t0 = time.monotonic()
    pattern, mass = last_query_attention(model, tokens, a.queries)
    dt = time.monotonic() - t0
    n = tokens.shape[1]
    print(f"{n} tokens in {dt:.1f} s; plan {model.plan['total']['human']}")
    for l in range(model.cfg.n_layers):
        p = pattern[l].mean(axis=0)
        print(f"layer {l:2d}: last query -> first key {p[0]:.3f}, last 64 keys {p[-64:].sum():.3f}, "
              f"middle half {p[n // 4: 3 * n // 4].sum():.3f}")
    draw(pattern, mass, a.queries, a.out,
         f"{model.cfg.model_name}: attention of the last query over a {n}-token document")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
