"""The examples run (each writes its picture), and the patching example equals the reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import EXAMPLES, PYTHON_DIR, STORIES, load_example, reference, rel_err

PNG = b"\x89PNG\r\n\x1a\n"


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.mark.parametrize("name,extra", [
    ("logit_lens", []),
    ("activation_patching", []),
    ("long_document_attention", ["--length", "400", "--queries", "16"]),
    ("steering", ["-n", "12"]),
])
def test_example_runs_and_draws(tmp_path, name, extra):
    out = tmp_path / f"{name}.png"
    stdout = run_example(name, STORIES, out, *extra)
    assert "wrote" in stdout
    data = out.read_bytes()
    assert data[:8] == PNG and 1000 < len(data) < 200_000


def test_activation_patching_example_equals_reference(stories):
    ex = load_example("activation_patching")
    ref = reference(STORIES)
    corrupted, got = ex.run(stories)
    n_layers, n = stories.cfg.n_layers, corrupted.shape[1]
    assert got.shape == (n_layers, n)

    # the same computation on the float64 reference
    clean = stories.to_tokens(ex.CLEAN)[0]
    answer = ex.next_token_id(stories, ex.CLEAN, ex.ANSWER)
    wrong = ex.next_token_id(stories, ex.CLEAN, ex.WRONG)
    clean_logits, clean_cache = ref.forward(clean)
    corrupted_logits = ref.logits(corrupted[0])
    metric = ex.logit_diff_metric(answer, wrong, clean_logits, corrupted_logits)
    want = np.zeros((n_layers, n))
    for layer in range(n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        for pos in range(n):
            def patch(act, name=name, pos=pos):
                act[0, pos] = clean_cache[name][0, pos]
            want[layer, pos] = metric(ref.logits(corrupted[0], hooks={name: patch}))
    # the patched position's layer-0 row is the clean run: the metric goes to 1 there
    assert abs(want[0, np.nonzero(clean != corrupted[0])[0][0]] - 1) < 1e-9
    err = rel_err(got, want)
    assert err <= 1e-4, f"relative error {err:.3g}\n{got}\n{want}"


def test_logit_lens_example_equals_reference(stories):
    ex = load_example("logit_lens")
    ref = reference(STORIES)
    tokens, logprobs = ex.logit_lens(stories, "Once upon a time, there was")
    _, cache = ref.forward(tokens[0])
    for layer in range(stories.cfg.n_layers):
        logits = ref.unembed(cache[f"blocks.{layer}.hook_resid_post"][0])
        lp = logits - logits.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        assert rel_err(logprobs[layer], lp) <= 1e-4, layer
