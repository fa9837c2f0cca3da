"""from_pretrained on a GGUF file made by llama.cpp's converter: the tokenizer, configuration and
every hook point of the Hugging Face folder it came from (against the float64 reference on the
folder; llama's q/k rows, permuted by the converter, come back in Hugging Face order)."""

import numpy as np

from conftest import SHARED, STORIES, assert_close, reference
from reference import hook_names

GGUF = SHARED / "gguf" / "stories260K-f32.gguf"
PROMPT = "Once upon a time, there was a little girl named Lily."


def test_gguf_logits_and_hooks_match_the_folder_reference(load):
    model = load(GGUF, kv_dtype="f32")
    folder = load(STORIES, kv_dtype="f32")
    tokens = model.to_tokens(PROMPT)
    assert tokens[0].tolist() == folder.to_tokens(PROMPT)[0].tolist()
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_heads, model.cfg.d_vocab) == (
        folder.cfg.n_layers, folder.cfg.d_model, folder.cfg.n_heads, folder.cfg.d_vocab)
    want_logits, want = reference(STORIES).forward(tokens[0])
    names = [n for n in hook_names(model.cfg.n_layers) if "attn.hook_" in n and "pattern" not in n]
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    assert_close(logits, want_logits, name="logits")
    for n in names:
        assert_close(cache[n], want[n], name=n)
    assert np.argmax(logits[0, -1]) == np.argmax(want_logits[0, -1])


def test_quantize_f32_gives_the_folder_reference(lc, load, tmp_path):
    # longctx.quantize writes the folder as GGUF; in f32 it runs as the float64 reference on the
    # folder does (and llama.cpp's converter's own file, above).
    out = lc.quantize(STORIES, "f32", tmp_path / "stories-f32.gguf")
    model = load(out, kv_dtype="f32")
    tokens = model.to_tokens(PROMPT)
    want_logits, _ = reference(STORIES).forward(tokens[0])
    assert_close(model(tokens), want_logits, name="logits")
    try:
        lc.quantize(STORIES, "q3_k", tmp_path / "x.gguf")
        raise AssertionError("expected an error")
    except lc.InvalidArgumentError as e:
        assert "q8_0, q4_0, q4_k_m, q5_0, q5_1, f16, f32" in str(e)
    assert not (tmp_path / "x.gguf").exists()
