"""The float64 reference itself: golden continuations of the real checkpoints, and its reader."""

import json

import numpy as np
import pytest

from checkpoints import write_safetensors
from conftest import BABYLLAMA, STORIES, reference
from reference import hook_names, read_safetensors


@pytest.mark.parametrize("model_path", [STORIES, BABYLLAMA], ids=["stories260K", "babyllama-tok105"])
def test_reference_reproduces_golden(model_path):
    ref = reference(model_path)
    golden = json.loads((model_path / "golden.json").read_text())
    cases = [c for c in golden["cases"] if "steps_top5" in c]
    assert cases
    for case in cases:
        ids, steps = ref.greedy(case["prompt_ids"], len(case["greedy_ids"]))
        assert ids == case["greedy_ids"], case["name"]
        for st, g in zip(steps, case["steps_top5"]):
            top = np.argsort(-st)[:5]
            assert list(top) == g["top_ids"]
            np.testing.assert_allclose(st[top], g["top_logits"], rtol=0, atol=1e-6)


def test_reference_records_every_hook_name():
    ref = reference(STORIES)
    _, cache = ref.forward([1, 403, 407, 261])
    assert set(cache) == set(hook_names(ref.n_layers))
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 8, 4, 4)
    assert cache["blocks.0.attn.hook_k"].shape == (1, 4, 4, 8)
    assert np.isneginf(cache["blocks.1.attn.hook_attn_scores"][0, :, 0, 1:]).all()
    np.testing.assert_array_equal(cache["blocks.0.hook_resid_pre"], cache["hook_embed"])


def test_reference_reads_f16_and_bf16(tmp_path):
    x = np.array([[1.0, -2.5, 3.140625], [65504.0, 1e-3, 0.0]])
    for dt, tol in (("F32", 1e-7), ("F16", 1e-3), ("BF16", 1e-2)):
        write_safetensors(tmp_path / f"{dt}.safetensors", {"x": x}, dt)
        y = read_safetensors(tmp_path / f"{dt}.safetensors")["x"]
        assert y.dtype == np.float64 and y.shape == x.shape
        np.testing.assert_allclose(y, x, rtol=tol)
