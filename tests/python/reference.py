"""An independent float64 NumPy forward pass for the tests of the Python module.

It reads a Hugging Face folder itself (config.json, and model.safetensors parsed by hand: an
8-byte little-endian header length, a JSON header, the raw data; F32, F16 and BF16) and runs the
decoder of Llama and Qwen2 checkpoints the way transformers writes it: an explicit causal mask over
the whole score matrix, rotate_half RoPE with rope_theta, RMSNorm, a SiLU-gated MLP, q/k/v biases
for Qwen2. It records every hook point of docs/hooks.md under its TransformerLens name (batch
dimension 1) and lets a callback replace or edit any of them, so patched logits can be computed
too. Nothing here uses longctx code.

    ref = Reference("../shared/models/stories260K")
    logits, cache = ref.forward([1, 403, 407])
    logits, _ = ref.forward(tokens, hooks={"blocks.2.hook_resid_pre": fn})  # fn(act) -> array|None
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

__all__ = ["read_safetensors", "Reference", "hook_names"]

_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """Every tensor of a safetensors file as a NumPy array (floats widened to float64)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        buf = data[a:b]
        if dt == "BF16":
            bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).astype(np.float64)
        elif dt in _DTYPES:
            arr = np.frombuffer(buf, dtype=_DTYPES[dt])
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float64)
            else:
                arr = arr.copy()
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dt}, which the reference does not read")
        out[name] = arr.reshape(shape)
    return out


def hook_names(n_layers, with_probes=True):
    """Every hook name of docs/hooks.md, in model order."""
    names = ["hook_embed"]
    for l in range(n_layers):
        p = f"blocks.{l}."
        names += [p + "hook_resid_pre", p + "ln1.hook_scale", p + "ln1.hook_normalized",
                  p + "attn.hook_q", p + "attn.hook_k", p + "attn.hook_v",
                  p + "attn.hook_rot_q", p + "attn.hook_rot_k",
                  p + "attn.hook_attn_scores", p + "attn.hook_pattern"]
        if with_probes:
            names += [p + "attn.pattern_query_pos", p + "attn.pattern_key_mass",
                      p + "attn.pattern_entropy"]
        names += [p + "attn.hook_z", p + "hook_attn_out", p + "hook_resid_mid",
                  p + "ln2.hook_scale", p + "ln2.hook_normalized",
                  p + "mlp.hook_pre", p + "mlp.hook_pre_linear", p + "mlp.hook_post",
                  p + "hook_mlp_out", p + "hook_resid_post"]
    names += ["ln_final.hook_scale", "ln_final.hook_normalized", "logits"]
    return names


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


class Reference:
    def __init__(self, model_path):
        self.model_path = model_path
        with open(os.path.join(model_path, "config.json")) as f:
            cfg = json.load(f)
        self.config = cfg
        mt = cfg["model_type"]
        if mt not in ("llama", "qwen2"):
            raise ValueError(f"reference: model_type {mt!r} is not llama or qwen2")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ValueError("reference: only hidden_act silu")
        rs = cfg.get("rope_scaling")
        if rs is not None and rs.get("rope_type", rs.get("type", "default")) != "default":
            raise ValueError("reference: only default RoPE")
        if mt == "qwen2" and cfg.get("use_sliding_window", False):
            raise ValueError("reference: no sliding window")
        self.model_type = mt
        self.d_model = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv_heads = cfg.get("num_key_value_heads") or self.n_heads
        self.d_head = cfg.get("head_dim") or self.d_model // self.n_heads
        self.d_mlp = cfg["intermediate_size"]
        self.d_vocab = cfg["vocab_size"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        self.attention_bias = mt == "qwen2" or bool(cfg.get("attention_bias", False))
        self.mlp_bias = mt == "llama" and bool(cfg.get("mlp_bias", False))

        w = read_safetensors(os.path.join(model_path, "model.safetensors"))
        self.w = w
        self.W_E = w["model.embed_tokens.weight"]
        if "lm_head.weight" in w:
            self.W_U = w["lm_head.weight"]
        elif cfg.get("tie_word_embeddings", False):
            self.W_U = self.W_E
        else:
            raise ValueError("reference: no lm_head.weight and embeddings are not tied")
        self.ln_final_w = w["model.norm.weight"]

    # -- pieces -------------------------------------------------------------------------------

    def _rope(self, n):
        d = self.d_head
        inv_freq = 1.0 / (self.theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
        freqs = np.outer(np.arange(n, dtype=np.float64), inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        return np.cos(emb), np.sin(emb)  # [pos, d_head]

    def _linear(self, x, prefix, bias):
        y = x @ self.w[prefix + ".weight"].T
        if bias:
            y = y + self.w[prefix + ".bias"]
        return y

    # -- the forward pass ---------------------------------------------------------------------

    def forward(self, tokens, hooks=None, pattern_queries=None):
        """Runs the prompt. Returns (logits [1,pos,d_vocab], cache {hook name: array}).

        hooks: {name: fn} or a list of (name, fn); fn(act) gets the float64 activation with its
        batch dimension and returns None (keep it, edits in place count) or a same-shape array.
        pattern_queries: the query positions of hook_attn_scores / hook_pattern (default all);
        pattern_key_mass and pattern_entropy always cover every query.
        """
        toks = np.asarray(tokens, dtype=np.int64).reshape(-1)
        n = toks.shape[0]
        hk = {}
        for name, fn in (hooks.items() if isinstance(hooks, dict) else (hooks or [])):
            hk.setdefault(name, []).append(fn)
        cache = {}

        def point(name, x):
            for fn in hk.get(name, ()):
                r = fn(x)
                if r is not None:
                    r = np.asarray(r, dtype=np.float64)
                    if r.shape != x.shape:
                        raise ValueError(f"{name}: hook returned {r.shape}, expected {x.shape}")
                    x = r
            cache[name] = x.copy()
            return x

        def rms(prefix, x, weight):
            scale = point(prefix + ".hook_scale",
                          np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps))
            normalized = point(prefix + ".hook_normalized", x / scale)
            return normalized * weight

        q_rows = np.arange(n) if pattern_queries is None else \
            np.array([q % n for q in pattern_queries], dtype=np.int64)
        cos, sin = self._rope(n)
        future = np.triu(np.ones((n, n), dtype=bool), k=1)  # the explicit causal mask
        group = self.n_heads // self.n_kv_heads
        H, D = self.n_heads, self.d_head

        x = point("hook_embed", self.W_E[toks][None])
        for l in range(self.n_layers):
            p = f"blocks.{l}."
            wp = f"model.layers.{l}."
            x = point(p + "hook_resid_pre", x)
            h = rms(p + "ln1", x, self.w[wp + "input_layernorm.weight"])
            q = point(p + "attn.hook_q", self._linear(h, wp + "self_attn.q_proj",
                                                      self.attention_bias).reshape(1, n, H, D))
            k = point(p + "attn.hook_k", self._linear(h, wp + "self_attn.k_proj",
                                                      self.attention_bias).reshape(1, n, -1, D))
            v = point(p + "attn.hook_v", self._linear(h, wp + "self_attn.v_proj",
                                                      self.attention_bias).reshape(1, n, -1, D))
            c, s = cos[None, :, None, :], sin[None, :, None, :]
            rq = point(p + "attn.hook_rot_q", q * c + _rotate_half(q) * s)
            rk = point(p + "attn.hook_rot_k", k * c + _rotate_half(k) * s)
            kk = np.repeat(rk, group, axis=2)  # [1, key, H, D]
            vv = np.repeat(v, group, axis=2)
            scores = np.einsum("bqhd,bkhd->bhqk", rq, kk) / np.sqrt(D)
            scores = np.where(future[None, None], -np.inf, scores)
            m = scores.max(axis=-1, keepdims=True)
            e = np.exp(scores - m)
            pattern = e / e.sum(axis=-1, keepdims=True)
            point(p + "attn.hook_attn_scores", scores[:, :, q_rows, :])
            point(p + "attn.hook_pattern", pattern[:, :, q_rows, :])
            point(p + "attn.pattern_query_pos", q_rows.copy())
            point(p + "attn.pattern_key_mass", pattern.sum(axis=2))
            with np.errstate(divide="ignore", invalid="ignore"):
                plogp = np.where(pattern > 0, pattern * np.log(pattern), 0.0)
            point(p + "attn.pattern_entropy", -plogp.sum(axis=-1))
            z = point(p + "attn.hook_z", np.einsum("bhqk,bkhd->bqhd", pattern, vv))
            attn_out = point(p + "hook_attn_out",
                             self._linear(z.reshape(1, n, H * D), wp + "self_attn.o_proj", False))
            x = point(p + "hook_resid_mid", x + attn_out)
            h = rms(p + "ln2", x, self.w[wp + "post_attention_layernorm.weight"])
            gate = point(p + "mlp.hook_pre", self._linear(h, wp + "mlp.gate_proj", self.mlp_bias))
            up = point(p + "mlp.hook_pre_linear", self._linear(h, wp + "mlp.up_proj", self.mlp_bias))
            post = point(p + "mlp.hook_post", _silu(gate) * up)
            mlp_out = point(p + "hook_mlp_out", self._linear(post, wp + "mlp.down_proj", self.mlp_bias))
            x = point(p + "hook_resid_post", x + mlp_out)
        h = rms("ln_final", x, self.ln_final_w)
        logits = point("logits", h @ self.W_U.T)
        return logits, cache

    def logits(self, tokens, hooks=None):
        return self.forward(tokens, hooks)[0]

    def unembed(self, resid):
        """ln_final then the output head, for a residual stream [..., d_model] (the logit lens)."""
        scale = np.sqrt((resid * resid).mean(axis=-1, keepdims=True) + self.eps)
        return (resid / scale * self.ln_final_w) @ self.W_U.T

    def greedy(self, prompt_ids, n_new, hooks=None):
        """Greedy continuation (recomputing the whole sequence each step) and each step's logits."""
        ids = list(prompt_ids)
        steps = []
        for _ in range(n_new):
            last = self.forward(ids, hooks)[0][0, -1]
            steps.append(last)
            ids.append(int(np.argmax(last)))
        return ids[len(prompt_ids):], steps


if __name__ == "__main__":  # validates the reference against a model's golden.json
    import sys

    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "models", "stories260K")
    ref = Reference(d)
    golden = json.load(open(os.path.join(d, "golden.json")))
    for case in golden["cases"]:
        if "steps_top5" not in case:
            continue
        ids, steps = ref.greedy(case["prompt_ids"], len(case["greedy_ids"]))
        assert ids == case["greedy_ids"], (case["name"], ids, case["greedy_ids"])
        worst = 0.0
        for st, g in zip(steps, case["steps_top5"]):
            top = np.argsort(-st)[:5]
            assert list(top) == g["top_ids"], (case["name"], list(top), g["top_ids"])
            worst = max(worst, float(np.max(np.abs(st[top] - np.array(g["top_logits"])))))
        print(case["name"], "greedy ok, top-5 max abs diff", worst)
