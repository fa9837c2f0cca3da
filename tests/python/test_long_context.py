"""Long context on a random SmolLM2-135M-shaped checkpoint (max position 32768).

The memory bound is checked at a length that keeps CI short (the 32k figure is in
docs/python.md); the refusal of a full hook_pattern of every layer is checked at 32768 tokens,
where it must come before any work.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import PYTHON_DIR

CI_LENGTH = int(os.environ.get("LONGCTX_PY_LONG_LENGTH", "2048"))
INTERPRETER_MIB = 60  # the interpreter, NumPy and the module itself

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import longctx
    path, n = sys.argv[1], int(sys.argv[2])
    model = longctx.HookedTransformer.from_pretrained(path, n_ctx=n)
    tokens = np.random.default_rng(0).integers(3, model.cfg.d_vocab, size=(1, n), dtype=np.int64)
    out, cache = model.run_with_cache(tokens, names_filter="blocks.29.hook_resid_post", pos_slice=-1,
                                      pattern_queries=[-1], return_type=None)
    x = np.asarray(cache["blocks.29.hook_resid_post"])
    print(json.dumps({"plan": model.plan, "out": out is None, "shape": list(x.shape),
                      "finite": bool(np.isfinite(x).all())}))
""")


def plan_total_bytes(plan):
    t = plan["total"]
    return int(t["bytes"] if isinstance(t, dict) else t)


def test_peak_rss_within_the_plan(smollm2_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    with open(tmp_path / "stderr", "w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, smollm2_dir, str(CI_LENGTH)], env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak (ru_maxrss, KiB)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        assert proc.returncode == 0, err.read()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["out"] and res["finite"]
    assert int(np.prod(res["shape"])) == 576
    peak = usage.ru_maxrss * 1024
    total = plan_total_bytes(res["plan"])
    print(f"\n{CI_LENGTH} tokens: peak RSS {peak / 2**20:.1f} MiB, plan {total / 2**20:.1f} MiB")
    assert peak <= total + INTERPRETER_MIB * 2**20, (
        f"peak RSS {peak / 2**20:.1f} MiB exceeds the plan {total / 2**20:.1f} MiB "
        f"+ {INTERPRETER_MIB} MiB")


@pytest.fixture(scope="module")
def smollm2_32k(lc, smollm2_dir):
    return lc.HookedTransformer.from_pretrained(smollm2_dir, n_ctx=32768)


@pytest.mark.parametrize("names_filter", [
    "blocks.*.attn.hook_pattern",
    lambda name: name.endswith("attn.hook_pattern"),
    [f"blocks.{l}.attn.hook_pattern" for l in range(30)],
], ids=["glob", "callable", "list"])
def test_full_pattern_of_every_layer_refused_before_running(lc, smollm2_32k, names_filter):
    tokens = np.random.default_rng(1).integers(3, smollm2_32k.cfg.d_vocab, size=(1, 32768), dtype=np.int64)
    t0 = time.monotonic()
    with pytest.raises(lc.MemoryBudgetError) as e:
        smollm2_32k.run_with_cache(tokens, names_filter=names_filter)
    elapsed = time.monotonic() - t0
    assert elapsed < 5.0, f"refused after {elapsed:.1f} s: it ran first"
    msg = str(e.value)
    for alt in ("names_filter", "pos_slice", "pattern_queries", "cache_dir"):
        assert alt in msg, f"{alt!r} not named in: {msg}"
    assert "GiB" in msg or "MiB" in msg or "bytes" in msg, msg
    # the model still runs, and exact rows of the last query are accepted
    _, cache = smollm2_32k.run_with_cache(tokens[:, :64], names_filter="blocks.0.attn.hook_pattern",
                                          pattern_queries=[-1])
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 9, 1, 64)
