"""longctx: long-context LLMs on CPU with a memory planner, and TransformerLens-style hooks.

    import longctx
    model = longctx.HookedTransformer.from_pretrained("path/to/hf-model")
    logits, cache = model.run_with_cache("Hello world", names_filter="blocks.0.hook_resid_post")

Arrays are NumPy arrays. See docs/python.md.
"""

from .errors import (
    Error,
    IoError,
    FormatError,
    ConfigError,
    UnsupportedError,
    ShapeError,
    InvalidArgumentError,
    OutOfRangeError,
    MemoryBudgetError,
    BusyError,
    InternalError,
)
from .hook_point import HookPoint
from .activation_cache import ActivationCache
from .config import Config
from .hooked_transformer import HookedTransformer
from .plan import plan
from .quantize import quantize
from . import utils

__all__ = [
    "HookedTransformer",
    "ActivationCache",
    "HookPoint",
    "Config",
    "plan",
    "quantize",
    "utils",
    "Error",
    "IoError",
    "FormatError",
    "ConfigError",
    "UnsupportedError",
    "ShapeError",
    "InvalidArgumentError",
    "OutOfRangeError",
    "MemoryBudgetError",
    "BusyError",
    "InternalError",
]
