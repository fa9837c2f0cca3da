"""Fixtures of the Python module's tests.

The module is imported from LONGCTX_PYTHON_DIR (default <repo>/build/python); the `longctx`
executable beside it (LONGCTX_BIN overrides) writes the random SmolLM2-shaped checkpoint.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
STORIES = MODELS / "stories260K"
BABYLLAMA = MODELS / "babyllama-tok105"
PYTHON_DIR = Path(os.environ.get("LONGCTX_PYTHON_DIR", REPO / "build" / "python")).resolve()
LONGCTX_BIN = Path(os.environ.get("LONGCTX_BIN", PYTHON_DIR.parent / "longctx"))
EXAMPLES = REPO / "examples"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PYTHON_DIR))

from checkpoints import write_random_qwen2  # noqa: E402
from reference import Reference  # noqa: E402


def pytest_report_header(config):
    return f"longctx module from {PYTHON_DIR}"


@pytest.fixture(scope="session")
def lc():
    """The longctx module; a failure (not a skip) when it is not built."""
    try:
        import longctx
    except ImportError as e:
        pytest.fail(f"cannot import longctx from {PYTHON_DIR} ({e}); build the target "
                    f"longctx_python or set LONGCTX_PYTHON_DIR")
    return longctx


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory):
    return str(write_random_qwen2(str(tmp_path_factory.mktemp("qwen2-random")),
                                  str(STORIES / "tokenizer.model")))


@pytest.fixture(scope="session")
def model_dirs(qwen2_dir):
    return {"stories260K": str(STORIES), "babyllama-tok105": str(BABYLLAMA),
            "qwen2-random": qwen2_dir}


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """A random SmolLM2-135M-shaped checkpoint (bf16, max position 32768)."""
    out = tmp_path_factory.mktemp("smollm2-random")
    if not LONGCTX_BIN.exists():
        pytest.fail(f"{LONGCTX_BIN} not found: build the target longctx or set LONGCTX_BIN")
    subprocess.run([str(LONGCTX_BIN), "random-model", "--preset", "smollm2-135m", "--max-pos",
                    "32768", "--dtype", "bf16", "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return str(out)


@functools.lru_cache(maxsize=None)
def reference(path):
    return Reference(str(path))


@pytest.fixture(scope="session")
def load(lc):
    """load(path, **kw): a HookedTransformer, one per (path, options) in the session."""
    models = {}

    def get(path, **kw):
        key = (str(path), tuple(sorted(kw.items())))
        if key not in models:
            models[key] = lc.HookedTransformer.from_pretrained(str(path), **kw)
        return models[key]

    return get


@pytest.fixture(scope="session")
def stories(load):
    """stories260K with an f32 KV cache (comparable with the float64 reference)."""
    return load(STORIES, kv_dtype="f32")


def load_example(name):
    """Imports examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rel_err(got, want):
    """max |got - want| over the finite entries of want, over max |want| there."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    fin = np.isfinite(want)
    if not fin.any():
        return 0.0
    scale = max(float(np.abs(want[fin]).max()), 1e-30)
    return float(np.abs(got[fin] - want[fin]).max()) / scale


def assert_close(got, want, rtol=1e-4, name=""):
    """Same shape, same non-finite entries (the -inf of masked scores), and within rtol of the
    tensor's largest magnitude elsewhere."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, reference {want.shape}"
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    got = got.astype(np.float64)
    fin = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), fin), f"{name}: non-finite entries differ"
    assert np.array_equal(got[~fin], want[~fin]), f"{name}: non-finite entries differ"
    err = rel_err(got, want)
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:g}"
