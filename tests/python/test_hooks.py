"""run_with_hooks and generate with hooks, against the reference."""

import numpy as np
import pytest

from conftest import STORIES, assert_close, reference

CLEAN = "Once upon a time, there was a little girl named Lily."
OTHER = "Once upon a time, there was a little dog named Sam."


def test_patching_resid_pre_from_another_prompt(stories):
    ref = reference(STORIES)
    clean = stories.to_tokens(CLEAN)
    other = stories.to_tokens(OTHER)
    n = clean.shape[1]
    assert other.shape == clean.shape
    _, clean_cache = stories.run_with_cache(clean, names_filter=lambda name: name.endswith("hook_resid_pre"))
    _, ref_clean = ref.forward(clean[0])
    for layer in range(stories.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_pre"
        assert_close(clean_cache[name], ref_clean[name], name=name)
        for pos in (n - 3, n - 1):
            def patch(act, hook, name=name, pos=pos):
                assert hook.name == name and hook.layer() == layer
                act = act.copy()
                act[0, pos] = clean_cache[name][0, pos]
                return act

            def ref_patch(act, name=name, pos=pos):
                act[0, pos] = ref_clean[name][0, pos]

            got = stories.run_with_hooks(other, fwd_hooks=[(name, patch)])
            want = ref.logits(other[0], hooks={name: ref_patch})
            assert_close(got, want, name=f"patched {name} at {pos}")
    # the whole stream at layer 2: the patched run is the clean run from there on
    whole = stories.run_with_hooks(
        other, fwd_hooks=[("blocks.2.hook_resid_pre", lambda act, hook: clean_cache["blocks.2.hook_resid_pre"])])
    assert_close(whole, ref.logits(clean[0]), name="whole resid_pre patched")


def test_identity_hook_leaves_logits_unchanged(stories):
    tokens = stories.to_tokens(CLEAN)
    plain = stories(tokens)
    seen = []

    def keep(act, hook):
        seen.append(hook.name)
        return None

    def same(act, hook):
        return act.copy()

    got = stories.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("hook_resid_mid"), keep),
                                                     ("blocks.1.mlp.hook_post", same),
                                                     ("blocks.3.attn.hook_rot_k", same)])
    assert sorted(seen) == [f"blocks.{l}.hook_resid_mid" for l in range(stories.cfg.n_layers)]
    np.testing.assert_array_equal(got, plain)


def test_in_place_edits_take_effect(stories):
    ref = reference(STORIES)
    tokens = stories.to_tokens(CLEAN)
    plain = stories(tokens)

    def scale(act, hook):
        act *= 0.5  # edited in place, nothing returned

    def ref_scale(act):
        act *= 0.5

    def ablate_head(act, hook):
        act[:, :, 3, :] = 0.0

    def ref_ablate(act):
        act[:, :, 3, :] = 0.0

    got = stories.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_mlp_out", scale),
                                                    ("blocks.3.attn.hook_z", ablate_head)])
    want = ref.logits(tokens[0], hooks={"blocks.1.hook_mlp_out": ref_scale,
                                        "blocks.3.attn.hook_z": ref_ablate})
    assert np.abs(got - plain).max() > 1e-2
    assert_close(got, want, name="edited in place")


def test_wrong_shape_raises_and_model_stays_usable(lc, stories):
    tokens = stories.to_tokens(CLEAN)
    plain = stories(tokens)
    with pytest.raises(lc.ShapeError) as e:
        stories.run_with_hooks(tokens, fwd_hooks=[("blocks.2.hook_resid_pre", lambda act, hook: act[:, :-1])])
    assert isinstance(e.value, lc.Error)
    assert "blocks.2.hook_resid_pre" in str(e.value)
    with pytest.raises(lc.Error):
        stories.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_q", lambda act, hook: np.zeros(3))])
    np.testing.assert_array_equal(stories(tokens), plain)
    _, cache = stories.run_with_cache(tokens, names_filter="blocks.2.hook_resid_pre")
    assert cache["blocks.2.hook_resid_pre"].shape == (1, tokens.shape[1], 64)
    assert stories.generate(CLEAN, max_new_tokens=3, return_type="tokens").shape[-1] >= tokens.shape[1]


def test_hook_fires_once_per_chunk_with_its_positions(load, qwen2_dir):
    model = load(qwen2_dir, kv_dtype="f32", prefill_chunk=4)
    tokens = model.to_tokens(CLEAN)
    n = tokens.shape[1]
    want_logits, want = reference(qwen2_dir).forward(tokens[0])
    calls = []

    def record(act, hook):
        pos = np.arange(n)[hook.pos]
        calls.append((pos, act.copy()))
        assert act.shape[1] == len(pos)

    got = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_mid", record)])
    assert len(calls) == -(-n // 4)
    np.testing.assert_array_equal(np.concatenate([p for p, _ in calls]), np.arange(n))
    assert_close(np.concatenate([a for _, a in calls], axis=1), want["blocks.1.hook_resid_mid"])
    assert_close(got, want_logits)


def test_steering_vector_in_generate(stories):
    ref = reference(STORIES)
    prompt = "Once upon a time"
    tokens = stories.to_tokens(prompt)
    vec = np.random.default_rng(0).standard_normal(64).astype(np.float32) * 2.0
    layer = "blocks.2.hook_resid_pre"

    def steer(act, hook):
        return act + vec

    def ref_steer(act):
        return act + vec

    n_new = 10
    out = stories.generate(tokens, max_new_tokens=n_new, stop_at_eos=False, fwd_hooks=[(layer, steer)],
                           return_type="tokens")
    out = np.asarray(out).reshape(-1)
    assert out.shape[0] == tokens.shape[1] + n_new
    np.testing.assert_array_equal(out[:tokens.shape[1]], tokens[0])
    want, _ = ref.greedy(tokens[0].tolist(), n_new, hooks={layer: ref_steer})
    plain, _ = ref.greedy(tokens[0].tolist(), n_new)
    assert want != plain  # the vector changes the text
    assert out[tokens.shape[1]:].tolist() == want
    unsteered = np.asarray(stories.generate(tokens, max_new_tokens=n_new, stop_at_eos=False,
                                            return_type="tokens")).reshape(-1)
    assert unsteered[tokens.shape[1]:].tolist() == plain
    text = stories.generate(prompt, max_new_tokens=n_new, stop_at_eos=False, fwd_hooks=[(layer, steer)])
    assert isinstance(text, str) and text.startswith(prompt)


def test_edit_in_place_and_return_act(stories):
    """TransformerLens hooks often edit act and return it: that is a replacement by itself."""
    import warnings

    ref = reference(STORIES)
    tokens = stories.to_tokens(CLEAN)

    def zero_head(act, hook):
        act[:, :, 1, :] = 0.0
        return act

    def ref_zero(act):
        act[:, :, 1, :] = 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = stories.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", zero_head)])
    assert_close(got, ref.logits(tokens[0], hooks={"blocks.0.attn.hook_z": ref_zero}))


def test_exception_in_hook_propagates(stories):
    tokens = stories.to_tokens(CLEAN)
    plain = stories(tokens)

    class Stop(Exception):
        pass

    def fail(act, hook):
        raise Stop(hook.name)

    with pytest.raises(Stop, match="blocks.1.hook_resid_post"):
        stories.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", fail)])
    np.testing.assert_array_equal(stories(tokens), plain)
