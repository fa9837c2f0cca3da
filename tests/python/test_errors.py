"""Each failure raises its longctx.Error subclass carrying the engine's message."""

import numpy as np
import pytest

from conftest import STORIES

KINDS = ["IoError", "FormatError", "ConfigError", "UnsupportedError", "ShapeError",
         "InvalidArgumentError", "OutOfRangeError", "MemoryBudgetError", "BusyError",
         "InternalError"]


def test_error_classes(lc):
    assert issubclass(lc.Error, Exception)
    for k in KINDS:
        assert issubclass(getattr(lc, k), lc.Error), k
    assert len({getattr(lc, k) for k in KINDS}) == len(KINDS)


def test_bad_path(lc, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(lc.IoError) as e:
        lc.HookedTransformer.from_pretrained(str(missing))
    assert str(missing) in str(e.value)


def test_bad_config(lc, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 64')
    with pytest.raises(lc.FormatError) as e:
        lc.HookedTransformer.from_pretrained(str(tmp_path))
    assert "config.json" in str(e.value)


def test_unknown_hook(lc, stories):
    tokens = stories.to_tokens("Once upon a time")
    with pytest.raises(lc.InvalidArgumentError) as e:
        stories.run_with_cache(tokens, names_filter="blocks.0.hook_resid_pree")
    msg = str(e.value)
    assert "blocks.0.hook_resid_pree" in msg and "blocks.0.hook_resid_pre" in msg.replace(
        "blocks.0.hook_resid_pree", "")
    with pytest.raises(lc.InvalidArgumentError) as e:
        stories.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_patern", lambda act, hook: None)])
    assert "blocks.1.attn.hook_patern" in str(e.value)
    with pytest.raises(lc.Error) as e:
        stories.run_with_cache(tokens, names_filter="blocks.99.hook_resid_pre")
    assert "99" in str(e.value)


def test_shape_mismatch(lc, stories):
    tokens = stories.to_tokens("Once upon a time")
    n = tokens.shape[1]
    with pytest.raises(lc.ShapeError) as e:
        stories.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_attn_out",
                                                   lambda act, hook: np.zeros((1, n, 65), np.float32))])
    msg = str(e.value)
    assert "blocks.1.hook_attn_out" in msg and "65" in msg and "64" in msg
    assert stories(tokens).shape == (1, n, 512)


def test_budget_too_small(lc):
    with pytest.raises(lc.MemoryBudgetError) as e:
        lc.HookedTransformer.from_pretrained(str(STORIES), mem_budget="1MiB")
    assert "budget" in str(e.value).lower()
    with pytest.raises(lc.MemoryBudgetError):
        lc.HookedTransformer.from_pretrained(str(STORIES), n_ctx=512, mem_budget="200KiB")


def test_context_beyond_the_model(lc, stories):
    with pytest.raises(lc.Error) as e:
        lc.HookedTransformer.from_pretrained(str(STORIES), n_ctx=4096)
    assert "512" in str(e.value)
    tokens = stories.to_tokens("Once upon a time")
    bad = tokens.copy()
    bad[0, 1] = 100000
    with pytest.raises(lc.OutOfRangeError):
        stories(bad)
    assert stories(tokens).shape[1] == tokens.shape[1]


def test_plan(lc):
    p = lc.plan("smollm2-135m", n_ctx=2048, kv_dtype="f16")
    assert isinstance(p, dict)
    assert p["kv_cache"]["bytes_per_token"] == 23040
    p = lc.plan(str(STORIES), n_ctx=256)
    assert p["context"] == 256
