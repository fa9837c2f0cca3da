"""ActivationCache: what run_with_cache returns, a mapping hook name -> NumPy array."""

import numpy as np

from .utils import get_act_name


class ActivationCache:
    """Hook name -> array, with TransformerLens's shorthands:

        cache["blocks.3.hook_resid_pre"]   cache["resid_pre", 3]   cache["pattern", 0]
        cache["scale", 2, "ln1"]           cache.stack_activation("resid_post")
        cache.accumulated_resid()          cache.remove_batch_dim()

    Arrays have the batch dimension 1 first until remove_batch_dim(). With cache_dir they are
    read-only memory maps of `cache.path` (a safetensors file).
    """

    def __init__(self, cache_dict, model=None, has_batch_dim=True, path=None, pos=None):
        self.cache_dict = dict(cache_dict)
        self.model = model
        self.has_batch_dim = has_batch_dim
        self.path = path
        # range of the positions the position-major tensors cover
        self.pos = pos

    def _key(self, key):
        if isinstance(key, tuple):
            return get_act_name(*key)
        return get_act_name(key) if key not in self.cache_dict else key

    def __getitem__(self, key):
        name = self._key(key)
        try:
            return self.cache_dict[name]
        except KeyError:
            near = [k for k in self.cache_dict if name.split(".")[-1] in k][:3]
            hint = f"; cached: {', '.join(near)}, ..." if near else ""
            raise KeyError(f"{name} was not captured (names_filter){hint}") from None

    def __contains__(self, key):
        try:
            return self._key(key) in self.cache_dict
        except ValueError:
            return False

    def __iter__(self):
        return iter(self.cache_dict)

    def __len__(self):
        return len(self.cache_dict)

    def keys(self):
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def to(self, *args, **kwargs):
        """A no-op (arrays are NumPy arrays on the CPU), for TransformerLens code."""
        return self

    def remove_batch_dim(self):
        """Drops the leading batch dimension (size 1) of every array, in place (views)."""
        if self.has_batch_dim:
            for k, v in self.cache_dict.items():
                if v.ndim > 0 and v.shape[0] == 1:
                    self.cache_dict[k] = v[0]
            self.has_batch_dim = False
        return self

    def _n_layers(self):
        if self.model is not None:
            return self.model.cfg.n_layers
        layers = [int(k.split(".")[1]) for k in self.cache_dict if k.startswith("blocks.")]
        return max(layers) + 1 if layers else 0

    def stack_activation(self, activation_name, layer=-1, sublayer_type=None):
        """np.stack of `activation_name` over layers 0..layer-1 (all with layer=-1): shape
        [n_layers, *the activation's shape]."""
        n = self._n_layers() if layer in (-1, None) else layer
        return np.stack([self[get_act_name(activation_name, l, sublayer_type)]
                         for l in range(n)])

    def accumulated_resid(self, layer=None, incl_mid=False, apply_ln=False, pos_slice=None,
                          mlp_input=False, return_labels=False):
        """The residual stream as it accumulates, TransformerLens's semantics: resid_pre of
        layers 0..layer (and resid_mid of 0..layer-1 with incl_mid, of layer with mlp_input);
        layer None or -1 (or n_layers): resid_pre of every layer plus the final resid_post.
        Shape [components, *resid shape]; with return_labels also ["0_pre", ..., "final_post"].
        """
        if apply_ln:
            raise NotImplementedError(
                "apply_ln is not supported: longctx has no weight folding; divide by "
                "cache['ln_final.hook_scale'] and multiply by the ln_final weight yourself")
        n_layers = self._n_layers()
        if layer is None or layer == -1:
            layer = n_layers
        comps, labels = [], []
        for l in range(layer + 1):
            if l == n_layers:
                comps.append(self["resid_post", n_layers - 1])
                labels.append("final_post")
                continue
            comps.append(self["resid_pre", l])
            labels.append(f"{l}_pre")
            if (incl_mid and l < layer) or (mlp_input and l == layer):
                comps.append(self["resid_mid", l])
                labels.append(f"{l}_mid")
        out = np.stack(comps)
        if pos_slice is not None:
            axis = out.ndim - 2
            idx = [slice(None)] * out.ndim
            idx[axis] = pos_slice if not isinstance(pos_slice, tuple) else slice(*pos_slice)
            out = out[tuple(idx)]
        return (out, labels) if return_labels else out

    def __repr__(self):
        where = f", memory-mapped from {self.path}" if self.path else ""
        return f"ActivationCache with keys {list(self.cache_dict)}{where}"
