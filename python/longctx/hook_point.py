"""HookPoint: what a run_with_hooks callable receives as `hook`, as in TransformerLens."""

import re

_LAYER = re.compile(r"^blocks\.(\d+)\.")


class HookPoint:
    """A named hook point of the model.

    name: the TransformerLens name ("blocks.3.attn.hook_q").
    pos:  a range of the positions the current call's array covers (its axis 1): the prompt runs
          in chunks, so a callable is called once per chunk with that chunk's rows.
    """

    def __init__(self, name):
        self.name = name
        self.pos = None

    def layer(self):
        """The block index of a blocks.{l}.* point; raises for model-level points (as TL)."""
        m = _LAYER.match(self.name)
        if not m:
            raise ValueError(f"{self.name} is not inside a block")
        return int(m.group(1))

    def __repr__(self):
        return f"HookPoint({self.name!r})"
