"""longctx.plan(): price a configuration without loading any weight."""

import json

from . import _longctx


def plan(path_or_preset, n_ctx=None, kv_dtype="f16", batch=1, mem_budget="auto",
         prefill_chunk="auto", weights_dtype="bf16"):
    """The memory plan as a dict, the same content as `longctx plan --json`.

    path_or_preset: a Hugging Face model folder (reads config.json and file sizes only) or a
    preset name (`longctx plan --help` lists them; weights priced at weights_dtype).
    n_ctx None: the largest context that fits the budget. The dict has "fits" and, when the
    request does not fit, "refusal" (the message loading would raise); it never raises for that.
    """
    from .hooked_transformer import _budget_str, _chunk_int
    text = _longctx.plan_json(str(path_or_preset), int(n_ctx or 0), str(kv_dtype), int(batch),
                              _budget_str(mem_budget), _chunk_int(prefill_chunk),
                              str(weights_dtype))
    return json.loads(text)
