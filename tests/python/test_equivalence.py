"""Logits and every hook point against the independent float64 reference (1e-4 relative)."""

import json

import numpy as np
import pytest

from conftest import STORIES, assert_close, reference
from reference import hook_names

MODELS = ["stories260K", "babyllama-tok105", "qwen2-random"]


def requestable(names):
    """pattern_query_pos comes with the pattern rows; it is not a name to ask for."""
    return [n for n in names if not n.endswith("pattern_query_pos")]
PROMPT = "Once upon a time, there was a little girl named Lily."


def test_to_tokens_matches_golden_ids(stories):
    golden = json.loads((STORIES / "golden.json").read_text())
    case = next(c for c in golden["cases"] if c.get("prompt_text"))
    tokens = stories.to_tokens(case["prompt_text"])
    assert tokens.dtype == np.int64 and tokens.shape == (1, len(case["prompt_ids"]))
    assert tokens[0].tolist() == case["prompt_ids"]
    assert stories.to_tokens(case["prompt_text"], prepend_bos=False)[0].tolist() == case["prompt_ids"][1:]
    strs = stories.to_str_tokens(case["prompt_text"])
    assert len(strs) == len(case["prompt_ids"])
    assert case["prompt_text"] in stories.to_string(tokens[0, 1:])


def test_cfg_carries_transformer_lens_names(stories):
    cfg = stories.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_mlp,
            cfg.d_vocab) == (5, 64, 8, 4, 8, 172, 512)
    assert cfg.n_ctx <= 512 and cfg.act_fn == "silu"
    assert isinstance(stories.plan, dict)


@pytest.mark.parametrize("name", MODELS)
def test_logits_and_every_hook_match_reference(name, model_dirs, load):
    path = model_dirs[name]
    model = load(path, kv_dtype="f32")
    tokens = model.to_tokens(PROMPT)
    want_logits, want = reference(path).forward(tokens[0])
    names = hook_names(model.cfg.n_layers)

    logits = model(tokens)
    assert_close(logits, want_logits, name="model(tokens)")

    logits, cache = model.run_with_cache(tokens, names_filter=requestable(names))
    assert_close(logits, want_logits, name="logits")
    missing = [n for n in names if n not in cache]
    assert not missing, f"not in the cache: {missing}"
    for n in names:
        assert_close(cache[n], want[n], name=n)


@pytest.mark.parametrize("name", MODELS)
def test_default_cache_holds_every_hook(name, model_dirs, load):
    path = model_dirs[name]
    model = load(path, kv_dtype="f32")
    tokens = model.to_tokens("One day")
    want_logits, want = reference(path).forward(tokens[0])
    logits, cache = model.run_with_cache(tokens)
    assert_close(logits, want_logits, name="logits")
    keys = set(cache.keys())
    missing = [n for n in hook_names(model.cfg.n_layers, with_probes=False) if n not in keys]
    assert not missing, f"not in the default cache: {missing}"
    for n in keys & set(want):
        assert_close(cache[n], want[n], name=n)


def test_chunked_prefill_concatenates_to_the_reference(qwen2_dir, load):
    model = load(qwen2_dir, kv_dtype="f32", prefill_chunk=4)
    tokens = model.to_tokens(PROMPT)
    assert tokens.shape[1] > 8  # several chunks
    want_logits, want = reference(qwen2_dir).forward(tokens[0])
    names = hook_names(model.cfg.n_layers)
    logits, cache = model.run_with_cache(tokens, names_filter=requestable(names))
    assert_close(logits, want_logits, name="logits")
    for n in names:
        assert_close(cache[n], want[n], name=n)


def test_pos_slice_and_pattern_queries(stories):
    ref = reference(STORIES)
    tokens = stories.to_tokens(PROMPT)
    n = tokens.shape[1]
    want_logits, want = ref.forward(tokens[0])
    names = ["blocks.1.hook_resid_post", "blocks.2.attn.hook_pattern", "blocks.2.attn.hook_attn_scores",
             "blocks.2.attn.pattern_key_mass",
             "blocks.2.attn.pattern_entropy", "logits"]
    logits, cache = stories.run_with_cache(tokens, names_filter=names, pos_slice=slice(-3, None),
                                           pattern_queries=[-1, 2])
    assert_close(logits, want_logits, name="returned logits")
    assert_close(cache["blocks.1.hook_resid_post"], want["blocks.1.hook_resid_post"][:, -3:])
    assert_close(cache["logits"], want_logits[:, -3:], name="cached logits")
    q = cache["blocks.2.attn.pattern_query_pos"]
    assert sorted(q.tolist()) == [2, n - 1]  # the rows of the queries asked for, in the order given here
    assert_close(cache["blocks.2.attn.hook_pattern"], want["blocks.2.attn.hook_pattern"][:, :, q])
    assert_close(cache["blocks.2.attn.hook_attn_scores"], want["blocks.2.attn.hook_attn_scores"][:, :, q])
    pattern = want["blocks.2.attn.hook_pattern"]
    assert_close(cache["blocks.2.attn.pattern_key_mass"], pattern[:, :, -3:].sum(axis=2))
    assert_close(cache["blocks.2.attn.pattern_entropy"], want["blocks.2.attn.pattern_entropy"][:, :, -3:])


def test_activation_cache_helpers(stories):
    tokens = stories.to_tokens("Once upon a time")
    _, want = reference(STORIES).forward(tokens[0])
    _, cache = stories.run_with_cache(tokens, names_filter=lambda n: "resid" in n or n == "hook_embed")
    assert_close(cache["resid_pre", 3], want["blocks.3.hook_resid_pre"])
    stacked = cache.stack_activation("resid_post")
    assert stacked.shape[0] == 5
    assert_close(stacked, np.stack([want[f"blocks.{l}.hook_resid_post"] for l in range(5)]))
    acc = cache.accumulated_resid()
    assert acc.shape[0] == 6  # resid_pre of each layer, then the final resid_post
    assert_close(acc[-1], want["blocks.4.hook_resid_post"])
    assert_close(acc[2], want["blocks.2.hook_resid_pre"])
    single = cache.remove_batch_dim()
    assert_close(single["blocks.0.hook_resid_pre"], want["blocks.0.hook_resid_pre"][0])


def test_loss_matches_reference(stories):
    tokens = stories.to_tokens(PROMPT)
    logits = reference(STORIES).logits(tokens[0])[0]
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    per_token = -lp[np.arange(tokens.shape[1] - 1), tokens[0, 1:]]
    loss = stories(tokens, return_type="loss")
    assert abs(float(loss) - per_token.mean()) <= 1e-4 * abs(per_token.mean())
    got = np.asarray(stories(tokens, return_type="loss", loss_per_token=True)).reshape(-1)
    assert_close(got, per_token, name="loss per token")
    both = stories(tokens, return_type="both")
    assert_close(both[0], logits[None], name="both: logits")
    assert stories(tokens, return_type=None) is None


def test_cache_dir_streams_to_disk(stories, tmp_path):
    tokens = stories.to_tokens(PROMPT)
    _, want = reference(STORIES).forward(tokens[0])
    names = ["blocks.*.hook_resid_post", "blocks.1.attn.hook_pattern", "blocks.3.mlp.hook_post"]
    _, cache = stories.run_with_cache(tokens, names_filter=names, cache_dir=tmp_path, return_type=None)
    assert any(p.stat().st_size > 0 for p in tmp_path.iterdir())
    for n in ["blocks.0.hook_resid_post", "blocks.4.hook_resid_post", "blocks.1.attn.hook_pattern",
              "blocks.3.mlp.hook_post"]:
        assert isinstance(cache[n], np.memmap), n
        assert_close(cache[n], want[n], name=n)
