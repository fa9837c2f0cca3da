"""longctx.quantize(): write a Hugging Face model folder as a GGUF file."""

import os

from . import _longctx


def quantize(model_dir, type, out):
    """Writes MODEL_DIR (config.json, safetensors, tokenizer) as the GGUF file OUT, as
    `longctx quantize` does: type is "q8_0", "q4_0", "q4_k_m", "f16" or "f32". The file runs in
    llama.cpp and in longctx (HookedTransformer.from_pretrained(out)). Returns OUT.
    """
    _longctx.quantize(os.fspath(model_dir), str(type), os.fspath(out))
    return os.fspath(out)
