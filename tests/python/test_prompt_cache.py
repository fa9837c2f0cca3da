"""generate(prompt_cache=PATH): the KV state of a shared prompt prefix is reused, the tokens are
those of a run without it (the independent float64 reference's greedy tokens), and a file that
cannot be used is said so (a warning, or FormatError when strict) without changing the result."""

import numpy as np
import pytest

from conftest import STORIES, reference


def test_resumed_generation_matches_the_reference(lc, stories, tmp_path):
    cache = tmp_path / "stories.lcpc"
    first = stories.to_tokens("Once upon a time, there was a little girl named Lily.")
    longer = stories.to_tokens("Once upon a time, there was a little girl named Lily. She loved")
    n_new = 12
    ref = reference(STORIES)
    out1 = stories.generate(first, max_new_tokens=n_new, stop_at_eos=False, return_type="tokens",
                            prompt_cache=cache)
    assert cache.exists() and cache.stat().st_size > 0
    want1, _ = ref.greedy(first[0].tolist(), n_new)
    assert np.asarray(out1).reshape(-1)[first.shape[1]:].tolist() == want1
    # The longer prompt starts with the cached one: its prefix comes from the file.
    before = cache.stat().st_mtime_ns
    out2 = stories.generate(longer, max_new_tokens=n_new, stop_at_eos=False, return_type="tokens",
                            prompt_cache=cache)
    want2, _ = ref.greedy(longer[0].tolist(), n_new)
    assert np.asarray(out2).reshape(-1)[longer.shape[1]:].tolist() == want2
    assert cache.stat().st_mtime_ns >= before  # rewritten with the longer prompt's state
    # Read-only: used, never written.
    size = cache.stat().st_size
    cache_copy = cache.read_bytes()
    stories.generate(first, max_new_tokens=2, prompt_cache=cache, prompt_cache_ro=True)
    assert cache.read_bytes() == cache_copy and cache.stat().st_size == size


def test_a_damaged_file_warns_and_changes_nothing(lc, stories, tmp_path):
    cache = tmp_path / "damaged.lcpc"
    tokens = stories.to_tokens("Once upon a time, there was a little girl")
    plain = stories.generate(tokens, max_new_tokens=8, stop_at_eos=False, return_type="tokens")
    stories.generate(tokens, max_new_tokens=1, prompt_cache=cache)
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0x40  # a byte inside the KV blocks
    cache.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        out = stories.generate(tokens, max_new_tokens=8, stop_at_eos=False, return_type="tokens",
                               prompt_cache=cache, prompt_cache_ro=True)
    np.testing.assert_array_equal(out, plain)
    with pytest.raises(lc.FormatError, match="prompt_cache_strict"):
        stories.generate(tokens, max_new_tokens=8, prompt_cache=cache, prompt_cache_strict=True)
    with pytest.raises(lc.InvalidArgumentError, match="fwd_hooks"):
        stories.generate(tokens, max_new_tokens=2, prompt_cache=cache,
                         fwd_hooks=[("blocks.0.hook_resid_pre", lambda a, hook: a)])
