"""HookedTransformer: TransformerLens's surface over the longctx engine.

A thin layer (DESIGN.md decision 8): the C++ module plans, loads and runs; this file turns
Python arguments into its calls and its results into NumPy arrays and ActivationCaches.
Values are those of TransformerLens's from_pretrained_no_processing (raw Hugging Face weights,
no folding or centring), batch size 1.
"""

import json
import os
import struct

import numpy as np

from . import _longctx
from .activation_cache import ActivationCache
from .config import Config
from .errors import InvalidArgumentError, UnsupportedError
from .hook_point import HookPoint


_PATTERN_POINTS = ("hook_attn_scores", "hook_pattern", "pattern_key_mass", "pattern_entropy")


def _budget_str(mem_budget):
    if mem_budget is None:
        return "auto"
    if isinstance(mem_budget, (int, np.integer)):
        return str(int(mem_budget))
    return str(mem_budget)


def _chunk_int(prefill_chunk):
    if prefill_chunk in (None, "auto"):
        return 0
    try:
        n = int(prefill_chunk)
    except (TypeError, ValueError):
        n = -1
    if n <= 0:
        raise InvalidArgumentError(
            f"prefill_chunk must be a positive number of tokens or 'auto', not {prefill_chunk!r}")
    return n


def _pos_range(pos_slice):
    """(start, stop, drop_dim) of a pos_slice: None, an int (TL: that position, its dimension
    dropped), a slice with step 1, or a (start, stop) tuple."""
    if pos_slice is None:
        return None, None, False
    if isinstance(pos_slice, (int, np.integer)) and not isinstance(pos_slice, bool):
        i = int(pos_slice)
        return i, (None if i == -1 else i + 1), True
    if isinstance(pos_slice, slice):
        if pos_slice.step not in (None, 1):
            raise InvalidArgumentError("pos_slice must have step 1 (positions are captured as "
                                       "one contiguous range)")
        return pos_slice.start, pos_slice.stop, False
    if isinstance(pos_slice, (tuple, list)) and len(pos_slice) in (1, 2):
        start = pos_slice[0]
        stop = pos_slice[1] if len(pos_slice) == 2 else None
        return start, stop, False
    raise InvalidArgumentError(
        f"pos_slice must be None, an int, a slice or (start, stop), not {pos_slice!r}")


def _read_safetensors(path):
    """Memory-maps every tensor of a safetensors file (read-only, no copy)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        dt = np.dtype(dtypes[info["dtype"]])
        if end == start:
            out[name] = np.zeros(shape, dt)
        else:
            out[name] = np.memmap(path, dtype=dt, mode="r", offset=8 + n + start, shape=shape)
    return out


class HookedTransformer:
    """A model loaded by the longctx engine, with TransformerLens's methods.

    Use HookedTransformer.from_pretrained(path). Attributes: cfg (Config), plan (dict, as
    `longctx plan --json`), hook_dict (name -> HookPoint), tokenizer-free helpers to_tokens,
    to_string, to_str_tokens.
    """

    def __init__(self, impl, path):
        self._impl = impl
        self.path = path
        self.cfg = Config(impl.config)
        self.plan = json.loads(impl.plan_json)
        self._names = list(impl.hook_names())
        self.hook_dict = {n: HookPoint(n) for n in self._names}

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, n_ctx=None, kv_dtype="f16", mem_budget="auto",
                        prefill_chunk="auto", threads=None, device=None, **kwargs):
        """Loads a Hugging Face model folder or a GGUF file (Llama, Mistral, Qwen2, Phi-3
        families; GGUF weights in F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K stay quantized).

        n_ctx: tokens a run may hold (input + generated); None: the largest that fits
        mem_budget, at most max_position_embeddings. kv_dtype: KV-cache precision ("f32",
        "f16", "bf16", "int8", "int4"). mem_budget: "auto" (available memory) or a size
        ("8GiB", or bytes). prefill_chunk: tokens per forward pass ("auto": the planner picks).
        threads: None for all cores.

        The plan comes first: a request that does not fit raises MemoryBudgetError before any
        weight is read, with the same message as the CLI. Values are TransformerLens's
        from_pretrained_no_processing (no weight folding): fold_ln etc. must be False.
        """
        if device not in (None, "cpu"):
            raise UnsupportedError(f"device {device!r}: longctx runs on the CPU (device='cpu')")
        for k, v in kwargs.items():
            if k in ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases",
                     "refactor_factored_attn_matrices") and not v:
                continue
            if k == "dtype" and str(v).replace("torch.", "") in ("float32", "float", "f32"):
                continue
            raise InvalidArgumentError(
                f"from_pretrained does not take {k}={v!r}: longctx computes in float32 with raw "
                "Hugging Face weights (as from_pretrained_no_processing); its options are n_ctx, "
                "kv_dtype, mem_budget, prefill_chunk, threads")
        impl = _longctx.Model(os.fspath(path), int(n_ctx or 0), str(kv_dtype),
                              _budget_str(mem_budget), _chunk_int(prefill_chunk),
                              int(threads or 0))
        return cls(impl, os.fspath(path))

    from_pretrained_no_processing = from_pretrained

    # ---- tokens ----------------------------------------------------------------------------

    def to_tokens(self, input, prepend_bos=True):
        """Text -> int64 array [1, pos]; with prepend_bos the tokenizer's BOS first (when it
        has one)."""
        if isinstance(input, (list, tuple)):
            if len(input) != 1:
                raise UnsupportedError("longctx runs one sequence at a time (batch size 1)")
            input = input[0]
        if not isinstance(input, str):
            raise InvalidArgumentError(f"to_tokens takes a string, not {type(input).__name__}")
        return self._impl.encode(input, bool(prepend_bos)).reshape(1, -1)

    def _tokens(self, input, prepend_bos=True):
        """int64 [1, pos] from text or token ids ([pos] or [1, pos])."""
        if isinstance(input, str) or (isinstance(input, (list, tuple)) and input
                                      and isinstance(input[0], str)):
            return self.to_tokens(input, prepend_bos)
        t = np.asarray(input)
        if t.ndim == 1:
            t = t.reshape(1, -1)
        if t.ndim != 2 or t.shape[0] != 1:
            raise UnsupportedError(
                f"tokens of shape {t.shape}: longctx runs one sequence at a time ([pos] or "
                "[1, pos])")
        if t.size == 0:
            raise InvalidArgumentError("the input has no tokens")
        if not np.issubdtype(t.dtype, np.integer):
            raise InvalidArgumentError(f"token ids must be integers, not {t.dtype}")
        return t.astype(np.int64, copy=False)

    def to_string(self, tokens):
        """Token ids -> text ([pos] -> str, [1, pos] / list of lists -> list of str)."""
        t = np.asarray(tokens)
        if t.ndim == 0:
            t = t.reshape(1)
        if t.ndim == 2:
            return [self._impl.decode(row.astype(np.int32).tolist(), True) for row in t]
        return self._impl.decode(t.astype(np.int32).tolist(), True)

    def to_str_tokens(self, input, prepend_bos=True):
        """Each token's text: a list of str (text or token ids)."""
        t = self._tokens(input, prepend_bos)
        return self._impl.token_strs(t[0].astype(np.int32).tolist())

    def to_single_token(self, string):
        t = self._impl.encode(string, False)
        if t.size != 1:
            raise InvalidArgumentError(f"{string!r} is {t.size} tokens, not one")
        return int(t[0])

    # ---- running ---------------------------------------------------------------------------

    def _run(self, tokens, return_type, loss_per_token, hooks=(), capture=None):
        if return_type not in ("logits", "loss", "both", None):
            raise InvalidArgumentError(
                f"return_type must be 'logits', 'loss', 'both' or None, not {return_type!r}")
        want_logits = return_type in ("logits", "both")
        want_loss = return_type in ("loss", "both")
        if want_loss and tokens.shape[1] < 2:
            raise InvalidArgumentError("the loss needs at least 2 tokens")
        res = self._impl.run(tokens[0].astype(np.int32).tolist(), want_logits, want_loss,
                             list(hooks), capture)
        loss = None
        if want_loss:
            nll = res["nll"].astype(np.float32)
            loss = nll.reshape(1, -1) if loss_per_token else np.float32(nll.mean())
        if return_type == "logits":
            out = res["logits"]
        elif return_type == "loss":
            out = loss
        elif return_type == "both":
            out = (res["logits"], loss)
        else:
            out = None
        return out, res

    def forward(self, input, return_type="logits", loss_per_token=False, prepend_bos=True):
        """logits float32 [1, pos, d_vocab] of every position, the loss (mean next-token
        cross-entropy; [1, pos-1] with loss_per_token), both as a tuple, or None."""
        out, _ = self._run(self._tokens(input, prepend_bos), return_type, loss_per_token)
        return out

    __call__ = forward

    def _hook_entries(self, fwd_hooks):
        entries = []
        for item in fwd_hooks or []:
            try:
                name, fn = item
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    "fwd_hooks is a list of (name or filter, fn) pairs") from None
            if callable(name):
                names = [n for n in self._names if name(n)]
                if not names:
                    raise InvalidArgumentError("a fwd_hooks name filter matched no hook")
            else:
                names = self._impl.expand_hooks(str(name))
            if len(names) > 1 or callable(name):
                # A filter or glob skips the attention-pattern points (not rows of positions);
                # naming one exactly raises, with where to get it instead.
                names = [n for n in names if not n.endswith(_PATTERN_POINTS)]
            for n in names:
                entries.append((n, fn, self.hook_dict[n]))
        return entries

    def run_with_hooks(self, input, fwd_hooks=(), return_type="logits", loss_per_token=False,
                       prepend_bos=True, reset_hooks_end=True, clear_contexts=False):
        """Runs with fn(act, hook) called on each named point: act a float32 view [1, n, ...]
        of the engine's buffer (the rows of one prefill chunk: hook.pos says which positions),
        edited in place or replaced by returning an array of the same shape."""
        out, _ = self._run(self._tokens(input, prepend_bos), return_type, loss_per_token,
                           self._hook_entries(fwd_hooks))
        return out

    def _names_list(self, names_filter):
        if names_filter is None:
            return list(self._names)
        if callable(names_filter):
            names = [n for n in self._names if names_filter(n)]
        elif isinstance(names_filter, str):
            names = self._impl.expand_hooks(names_filter)
        else:
            names = []
            for n in names_filter:
                names += self._impl.expand_hooks(str(n))
        if not names:
            raise InvalidArgumentError("names_filter matched no hook")
        return names

    def run_with_cache(self, input, names_filter=None, pos_slice=None, pattern_queries=None,
                       return_type="logits", cache_dir=None, loss_per_token=False,
                       prepend_bos=True, fwd_hooks=(), remove_batch_dim=False):
        """(output, ActivationCache). names_filter: None (every hook), a name or glob, a list,
        or a callable on names. pos_slice: an int (that position, its dimension dropped as in
        TL), a slice or (start, stop). pattern_queries: query positions of hook_pattern /
        hook_attn_scores rows (default: every position of pos_slice). cache_dir: write the
        cache to DIR/cache.safetensors and memory-map it instead of holding it in memory.

        A cache that does not fit the memory budget raises MemoryBudgetError before running.
        """
        tokens = self._tokens(input, prepend_bos)
        names = self._names_list(names_filter)
        start, stop, drop = _pos_range(pos_slice)
        queries = [] if pattern_queries is None else [int(q) for q in np.atleast_1d(pattern_queries)]
        path = None
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            path = os.path.join(os.fspath(cache_dir), "cache.safetensors")
        capture = {"names": ",".join(names), "pos_start": start, "pos_stop": stop,
                   "pattern_queries": queries, "cache_path": path}
        out, res = self._run(tokens, return_type, loss_per_token,
                             self._hook_entries(fwd_hooks), capture)
        if path is not None:
            arrays = _read_safetensors(path)
            arrays.pop("tokens", None)
        else:
            arrays = dict(res["cache"])
        if drop:
            arrays = {k: self._drop_pos(k, v, pattern_queries is None) for k, v in arrays.items()}
        cache = ActivationCache(arrays, self, path=path, pos=range(res["pos_first"], res["pos_last"]))
        if remove_batch_dim:
            cache.remove_batch_dim()
        return out, cache

    @staticmethod
    def _drop_pos(name, a, pattern_rows_are_pos):
        if name.endswith(("hook_pattern", "hook_attn_scores")):
            return a[:, :, 0] if pattern_rows_are_pos else a
        if name.endswith("pattern_entropy"):
            return a[:, :, 0]
        if name.endswith(("pattern_key_mass", "pattern_query_pos")):
            return a
        return a[:, 0]

    # ---- generation ------------------------------------------------------------------------

    def generate(self, input="", max_new_tokens=10, temperature=0.0, top_k=None, top_p=None,
                 min_p=None, stop_at_eos=True, fwd_hooks=None, return_type="input",
                 verbose=False, prepend_bos=True, seed=None, prompt_cache=None,
                 prompt_cache_ro=False, prompt_cache_strict=False):
        """Continues `input` (text or token ids) through the library's Generator: greedy at
        temperature 0, else sampled with top_k / top_p / min_p. fwd_hooks apply to the prompt
        and to every generated token. return_type "str": prompt + continuation as text,
        "tokens": int64 [1, pos + new], "input": the type of `input`. verbose shows the
        prefill's progress line on stderr.

        prompt_cache (a path): as the CLI's --prompt-cache, the KV state of the longest prefix
        of the prompt the file holds is reused and only the rest is prefilled; afterwards the
        prompt's state is saved there (not with prompt_cache_ro). A file that cannot be used
        (another model or KV type, damaged) gives a RuntimeWarning with the reason and a full
        prefill, or a FormatError with prompt_cache_strict. Not with fwd_hooks."""
        if return_type not in ("str", "tokens", "input"):
            raise InvalidArgumentError(
                f"return_type must be 'str', 'tokens' or 'input', not {return_type!r}")
        is_str = isinstance(input, str)
        tokens = self._tokens(input, prepend_bos) if not (is_str and input == "") else \
            np.array([[self._impl.bos_id]], np.int64)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little") if temperature > 0 else 0
        new = self._impl.generate(tokens[0].astype(np.int32).tolist(), int(max_new_tokens),
                                  float(temperature), int(top_k or 0),
                                  1.0 if top_p is None else float(top_p),
                                  0.0 if min_p is None else float(min_p), bool(stop_at_eos),
                                  int(seed) & (2**64 - 1), self._hook_entries(fwd_hooks),
                                  bool(verbose),
                                  "" if prompt_cache is None else os.fspath(prompt_cache),
                                  bool(prompt_cache_ro), bool(prompt_cache_strict))
        full = np.concatenate([tokens, np.asarray(new, np.int64).reshape(1, -1)], axis=1)
        if return_type == "tokens" or (return_type == "input" and not is_str):
            return full
        return self._impl.decode(full[0].astype(np.int32).tolist(), True)

    # ---- misc ------------------------------------------------------------------------------

    @property
    def hook_names(self):
        """Every hook name, in the order the forward pass fires them."""
        return list(self._names)

    def __repr__(self):
        c = self.cfg
        return (f"HookedTransformer({c.model_name}: {c.n_layers} layers, d_model {c.d_model}, "
                f"n_ctx {c.n_ctx}, kv {c.kv_dtype})")
