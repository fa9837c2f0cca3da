"""The engine's errors: `Error` and one subclass per kind, each carrying the engine's message.

Some also derive from a built-in class where the meaning matches (IoError is an OSError,
InvalidArgumentError and ShapeError are ValueErrors, OutOfRangeError an IndexError,
MemoryBudgetError a MemoryError), so generic handlers keep working. `err.kind` names the kind.
"""

from ._longctx import (  # noqa: F401  (defined in C++: python/src/errors.cc)
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
