"""TransformerLens-style helpers: get_act_name."""

_ATTN = {"q", "k", "v", "z", "rot_q", "rot_k", "attn_scores", "pattern"}
_ATTN_EXTRA = {"pattern_key_mass", "pattern_entropy", "pattern_query_pos"}
_MLP = {"pre", "pre_linear", "post"}
_BLOCK = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"}
_ALIASES = {"attn": "pattern", "attn_logits": "attn_scores", "key": "k", "query": "q",
            "value": "v", "mlp_pre": "pre", "mlp_post": "post", "mlp_pre_linear": "pre_linear"}


def get_act_name(name, layer=None, layer_type=None):
    """The full hook name of a TransformerLens shorthand: get_act_name("resid_pre", 3) is
    "blocks.3.hook_resid_pre", ("pattern", 0) "blocks.0.attn.hook_pattern", ("scale", 2, "ln1")
    "blocks.2.ln1.hook_scale", ("scale") "ln_final.hook_scale", ("embed") "hook_embed"."""
    if "." in name or name == "logits":
        return name
    name = _ALIASES.get(name, name)
    if name in ("embed", "hook_embed"):
        return "hook_embed"
    if name in ("scale", "normalized"):
        if layer is None or layer_type in (None, "ln_final"):
            if layer is None:
                return f"ln_final.hook_{name}"
        lt = {"attn": "ln1", "mlp": "ln2", "a": "ln1", "m": "ln2"}.get(layer_type, layer_type)
        if lt not in ("ln1", "ln2"):
            raise ValueError(f"say which norm of layer {layer}: get_act_name({name!r}, {layer}, "
                             "'ln1' or 'ln2')")
        return f"blocks.{layer}.{lt}.hook_{name}"
    if layer is None:
        raise ValueError(f"{name!r} needs a layer: get_act_name({name!r}, LAYER)")
    if name in _ATTN:
        return f"blocks.{layer}.attn.hook_{name}"
    if name in _ATTN_EXTRA:
        return f"blocks.{layer}.attn.{name}"
    if name in _MLP:
        return f"blocks.{layer}.mlp.hook_{name}"
    if name in _BLOCK:
        return f"blocks.{layer}.hook_{name}"
    raise ValueError(f"unknown activation name {name!r}")
