#!/usr/bin/env python3
"""Writes tests/model/fixtures/rope_freqs.json: RoPE inverse frequencies and attention factors
computed with NumPy (float64) from the published formulas, for the published config.json of real
checkpoints and for the tiny random-weight models of tests/model/families_test.cc.

Independent of longctx's C++ code: formulas from the papers / reference implementations
(Llama 3.1 "llama3" scaling: Meta's reference code; YaRN: Peng et al. 2023 and its reference code,
as used by transformers' _compute_yarn_parameters; LongRoPE: Ding et al. 2024 / Phi-3 modeling
code; dynamic NTK: transformers' _compute_dynamic_ntk_parameters). The C++ test
(rope_fixture_test.cc) reads only the JSON, so python is not needed at test time.

The published configs are read from tests/config/published_configs.h (one copy of that data).
Regenerate (Debian: apt-get install python3-numpy):
    /usr/bin/python3 tests/model/gen_rope_fixture.py > tests/model/fixtures/rope_freqs.json
"""
import json
import math
import os
import re

import numpy as np

# ---- published config.json files of real checkpoints: the texts in tests/config/published_configs.h


def published(name):
    """The raw string literal `name` of tests/config/published_configs.h, parsed."""
    here = os.path.dirname(os.path.abspath(__file__))
    text = open(os.path.join(here, "..", "config", "published_configs.h")).read()
    m = re.search(r"\b" + name + r' = R"\((.*?)\)";', text, re.S)
    return json.loads(m.group(1))


def with_rope(cfg, **fields):
    cfg = dict(cfg)
    cfg.update(fields)
    return cfg


LLAMA2_7B = {  # meta-llama/Llama-2-7b-hf (the fields RoPE and parsing need)
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 32000, "max_position_embeddings": 4096, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-05}

REAL = {
    "llama-3.1-8b": published("kLlama31_8B_Instruct"),
    "phi-3.5-mini": published("kPhi35Mini"),
    # Qwen2.5-7B with the rope_scaling block the Qwen2.5 model cards give for contexts beyond
    # 32768 tokens (YaRN, factor 4)
    "qwen2.5-7b-yarn": with_rope(published("kQwen25_7B"), rope_scaling={
        "factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}),
    "mistral-7b": published("kMistral7B"),
    "phi-3-mini-4k": published("kPhi3Mini4k"),
    # Llama-2-7B with the dynamic-NTK rope_scaling of transformers' documentation
    "llama-2-7b-dynamic": with_rope(LLAMA2_7B, rope_scaling={"type": "dynamic", "factor": 2.0}),
    # lmsys/longchat-7b-16k style linear position interpolation on Llama-2-7B
    "llama-2-7b-linear": with_rope(LLAMA2_7B, max_position_embeddings=16384,
                                   rope_scaling={"type": "linear", "factor": 8.0}),
    # YaRN with every optional field (DeepSeek-style mscale ratio, no truncation) and a partial
    # rotary factor, on a Llama-shaped config
    "yarn-mscale-partial": {
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256, "max_position_embeddings": 65536, "rope_theta": 500000.0,
        "partial_rotary_factor": 0.75,
        "rope_scaling": {"rope_type": "yarn", "factor": 16.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 16,
                         "beta_slow": 2, "mscale": 1.0, "mscale_all_dim": 0.5,
                         "truncate": False}},
}


def tiny_factors(n, lo, hi, seed):
    rng = np.random.default_rng(seed)
    return [float(x) for x in np.sort(rng.uniform(lo, hi, n))]


# Tiny configs of tests/model/families_test.cc (random weights, real head layouts, small hidden).
TINY = {
    "tiny-llama31": {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "max_position_embeddings": 2048, "rope_theta": 500000.0,
        "rms_norm_eps": 1e-05, "tie_word_embeddings": False,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64, "rope_type": "llama3"}},
    "tiny-mistral": {
        "model_type": "mistral", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
        "vocab_size": 300, "max_position_embeddings": 2048, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-05, "sliding_window": 24},
    "tiny-qwen2-yarn": {
        "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "max_position_embeddings": 2048, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-06, "tie_word_embeddings": True, "use_sliding_window": True,
        "sliding_window": 20, "max_window_layers": 1,
        "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32,
                         "type": "yarn"}},
    "tiny-phi3-longrope": {
        "model_type": "phi3", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "vocab_size": 300, "max_position_embeddings": 2048,
        "original_max_position_embeddings": 40, "rope_theta": 10000.0, "rms_norm_eps": 1e-05,
        "sliding_window": 2047,
        "rope_scaling": {"type": "longrope", "short_factor": tiny_factors(8, 1.0, 3.0, 1),
                         "long_factor": tiny_factors(8, 1.0, 60.0, 2)}},
    "tiny-phi3-mini-4k": {
        "model_type": "phi3", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "vocab_size": 300, "max_position_embeddings": 4096, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-05, "sliding_window": 19, "partial_rotary_factor": 0.5},
    "tiny-llama-dynamic": {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "vocab_size": 300, "max_position_embeddings": 32, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-05, "rope_scaling": {"type": "dynamic", "factor": 3.0}},
}


def rot_dim(c):
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return int(head_dim * c.get("partial_rotary_factor", 1.0)) // 2 * 2


def rope(c, seq_len):
    """(inv_freq, attention_factor) of a forward pass over seq_len tokens (0: at load)."""
    d = rot_dim(c)
    theta = float(c.get("rope_theta", 10000.0))
    exps = np.arange(0, d, 2, dtype=np.float64) / d
    inv = 1.0 / theta ** exps
    rs = c.get("rope_scaling")
    if not rs:
        return inv, 1.0
    kind = rs.get("rope_type", rs.get("type"))
    if c["model_type"] == "phi3" and kind in ("su", "yarn"):
        kind = "longrope"
    if kind == "linear":
        return inv / rs["factor"], 1.0
    if kind == "dynamic":
        m = c["max_position_embeddings"]
        L = max(seq_len, m)
        f = rs["factor"]
        base = theta * (f * L / m - (f - 1)) ** (d / (d - 2))
        return 1.0 / base ** exps, 1.0
    if kind == "llama3":
        f, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        out = np.where(wavelen > old / lo, inv / f, (1 - smooth) * inv / f + smooth * inv)
        out = np.where(wavelen < old / hi, inv, out)
        return out, 1.0
    if kind == "yarn":
        s = rs["factor"]
        orig = rs.get("original_max_position_embeddings", c["max_position_embeddings"])
        b_fast = rs.get("beta_fast") or 32
        b_slow = rs.get("beta_slow") or 1

        def dim_for_rotations(r):  # dimension index whose wavelength fits r times in orig
            return d * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(theta))

        lo, hi = dim_for_rotations(b_fast), dim_for_rotations(b_slow)
        if rs.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        keep = 1 - ramp  # 1: extrapolate (keep the frequency), 0: interpolate (divide by s)
        out = inv / s * (1 - keep) + inv * keep

        def mscale(x, m=1.0):
            return 1.0 if x <= 1 else 0.1 * m * math.log(x) + 1.0

        if rs.get("attention_factor") is not None:
            att = rs["attention_factor"]
        elif rs.get("mscale") and rs.get("mscale_all_dim"):
            att = mscale(s, rs["mscale"]) / mscale(s, rs["mscale_all_dim"])
        else:
            att = mscale(s)
        return out, att
    if kind == "longrope":
        orig = c.get("original_max_position_embeddings", 4096 if c["model_type"] == "phi3"
                     else rs.get("original_max_position_embeddings",
                                 c["max_position_embeddings"]))
        s = rs.get("factor") or c["max_position_embeddings"] / orig
        att = rs.get("attention_factor")
        if att is None:
            att = 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(orig))
        ext = np.array(rs["long_factor"] if seq_len > orig else rs["short_factor"])
        return 1.0 / (ext * theta ** exps), att
    raise ValueError(kind)


def seq_lens(c):
    rs = c.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type"))
    if kind in ("longrope", "su"):
        orig = c.get("original_max_position_embeddings", 4096)
        return [0, orig, orig + 1, 2 * orig]
    if kind == "dynamic":
        m = c["max_position_embeddings"]
        return [0, m, m + 1, int(1.5 * m), 2 * m, 4 * m]
    return [0]


def main():
    cases = []
    for group, table in (("published", REAL), ("tiny", TINY)):
        for name, cfg in table.items():
            expect = []
            for L in seq_lens(cfg):
                inv, att = rope(cfg, L)
                expect.append({"seq_len": L, "inv_freq": [float(x) for x in inv],
                               "attention_factor": float(att)})
            cases.append({"name": name, "group": group, "config": cfg, "expect": expect})
    print(json.dumps({"generator": "tests/model/gen_rope_fixture.py", "cases": cases},
                     indent=1))


if __name__ == "__main__":
    main()
