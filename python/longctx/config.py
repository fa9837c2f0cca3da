"""Config: the model's shapes under TransformerLens's HookedTransformerConfig field names."""


class Config:
    """Read-only attributes: n_layers, d_model, n_heads, n_key_value_heads, d_head, d_mlp,
    d_vocab, n_ctx (the context the model was loaded with), max_position_embeddings,
    model_name, original_architecture, act_fn, normalization_type ("RMS"),
    positional_embedding_type ("rotary"), eps, rotary_base, rotary_dim, kv_dtype, ... .
    Also a mapping: cfg["d_model"], cfg.to_dict()."""

    def __init__(self, fields):
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name):
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"Config has no field {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only; load the model again to change it")

    def __getitem__(self, name):
        return self._fields[name]

    def __contains__(self, name):
        return name in self._fields

    def __dir__(self):
        return list(self._fields) + ["to_dict"]

    def to_dict(self):
        return dict(self._fields)

    def __repr__(self):
        body = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"Config({body})"
