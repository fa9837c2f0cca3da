"""Small random checkpoints for the Python tests, written with NumPy (no longctx code)."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np

QWEN2_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,  # the stories260K tokenizer's
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
}


def write_safetensors(path, tensors, dtype="F16"):
    """tensors: {name: float array}; stored as F32, F16 or BF16 (round to nearest even)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            u = a.view(np.uint32).astype(np.uint64)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            raw = u.astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_random_qwen2(out_dir, tokenizer_model, seed=7, config=None, dtype="F16"):
    """A small Qwen2 checkpoint (q/k/v biases, untied lm_head, GQA) with random weights of
    unit-scale activations; its tokenizer is `tokenizer_model` (copied into the folder)."""
    cfg = dict(QWEN2_CONFIG, **(config or {}))
    rng = np.random.default_rng(seed)
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or d // H

    def lin(o, i):
        return rng.standard_normal((o, i)) / np.sqrt(i)

    t = {"model.embed_tokens.weight": rng.standard_normal((v, d))}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = 1.0 + 0.2 * rng.standard_normal(d)
        t[p + "self_attn.q_proj.weight"] = 1.5 * lin(H * D, d)
        t[p + "self_attn.q_proj.bias"] = 0.5 * rng.standard_normal(H * D)
        t[p + "self_attn.k_proj.weight"] = 1.5 * lin(KV * D, d)
        t[p + "self_attn.k_proj.bias"] = 0.5 * rng.standard_normal(KV * D)
        t[p + "self_attn.v_proj.weight"] = lin(KV * D, d)
        t[p + "self_attn.v_proj.bias"] = 0.5 * rng.standard_normal(KV * D)
        t[p + "self_attn.o_proj.weight"] = lin(d, H * D)
        t[p + "post_attention_layernorm.weight"] = 1.0 + 0.2 * rng.standard_normal(d)
        t[p + "mlp.gate_proj.weight"] = lin(f, d)
        t[p + "mlp.up_proj.weight"] = lin(f, d)
        t[p + "mlp.down_proj.weight"] = lin(d, f)
    t["model.norm.weight"] = 1.0 + 0.2 * rng.standard_normal(d)
    t["lm_head.weight"] = 2.0 * lin(v, d)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t, dtype)
    shutil.copyfile(tokenizer_model, os.path.join(out_dir, "tokenizer.model"))
    return out_dir
