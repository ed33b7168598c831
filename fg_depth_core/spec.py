"""Declared settings: every configuration key and every node parameter states its help, allowed values and
bounds next to its default, once, in a :class:`Spec`. Validation (:meth:`Spec.problem`), the generated
references (docs/CONFIG.md, docs/NODE.md: :meth:`Spec.allowed`) and ROS parameter descriptors all read that
one declaration.

A Spec checks a value that already has the right type (the config loader and the node's parameter reader
convert types first); rules that relate two settings (max_depth > min_depth) are written in ``rule`` for
the reader and checked by the owner, which knows both values.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

#: The key of a dataclass field's metadata that holds its Spec.
SPEC_KEY = "spec"


@dataclass(frozen=True)
class Spec:
    """What one setting means and which values it allows.

    help: what it does, with units. choices: the allowed values (any other is refused). minimum, maximum:
    inclusive bounds, or exclusive with min_exclusive / max_exclusive. multiple_of: integers must be a
    multiple of it. pattern: a regular expression a string must match in full. rule: a constraint the
    owner checks because it involves other settings or needs code (docs show it; :meth:`problem` does not
    check it). each: the constraints apply to every element of a list value, which must also have at least
    min_items elements.
    """

    help: str
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    multiple_of: Optional[int] = None
    pattern: Optional[str] = None
    rule: str = ""
    each: bool = False
    min_items: int = 0

    def expected(self) -> str:
        """The constraints as the words after 'expected' in an error ("one of ['a', 'b']", "> 0", ...);
        "" when nothing is declared beyond the type."""
        return self._describe(markdown=False)

    def allowed(self) -> str:
        """The allowed values for references (Markdown): the constraints, then the rule."""
        return "; ".join(t for t in (self._describe(markdown=True), self.rule) if t)

    def problem(self, value: Any) -> Optional[str]:
        """None if ``value`` meets the declared constraints, else "expected ..., got ..." (rule excluded)."""
        if self.each:
            if not isinstance(value, (list, tuple)) or len(value) < max(self.min_items, 1):
                return f"expected {self.expected()}, got {value!r}"
            inner = dataclasses.replace(self, each=False, min_items=0)
            if any(inner.problem(item) is not None for item in value):
                return f"expected {self.expected()}, got {value!r}"
            return None
        if self.choices and value not in self.choices:
            return f"expected {self.expected()}, got {value!r}"
        if self._out_of_bounds(value) or (
            self.multiple_of and isinstance(value, int) and value % self.multiple_of
        ) or (self.pattern and isinstance(value, str) and not re.fullmatch(self.pattern, value)):
            return f"expected {self.expected()}, got {value!r}"
        return None

    # ---------------------------------------------------------------------------------------- helpers

    def _describe(self, markdown: bool) -> str:
        parts = []
        pattern = f"`{self.pattern}`" if markdown else self.pattern
        if self.choices:
            listed = ", ".join(f"`{c}`" for c in self.choices) if markdown else str(list(self.choices))
            parts.append(f"one of {listed}")
        for part in (
            self._bounds(),
            f"a multiple of {self.multiple_of}" if self.multiple_of else "",
            "" if not self.pattern else f"matching {pattern}",
        ):
            if part:
                parts.append(part)
        text = " and ".join(parts)
        if self.each:
            text = f"a list of at least {max(self.min_items, 1)}" + (f", each {text}" if text else "")
        return text

    def _bounds(self) -> str:
        lo = None if self.minimum is None else f"{'>' if self.min_exclusive else '>='} {self.minimum:g}"
        hi = None if self.maximum is None else f"{'<' if self.max_exclusive else '<='} {self.maximum:g}"
        if lo and hi and not (self.min_exclusive or self.max_exclusive):
            return f"{lo} and {hi}"
        if lo and hi:
            left = "(" if self.min_exclusive else "["
            right = ")" if self.max_exclusive else "]"
            return f"a value in {left}{self.minimum:g}, {self.maximum:g}{right}"
        return lo or hi or ""

    def _out_of_bounds(self, value: Any) -> bool:
        if self.minimum is None and self.maximum is None:
            return False
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False  # the type check is the caller's
        if isinstance(value, float) and not math.isfinite(value):
            return True
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value <= lo if self.min_exclusive else value < lo):
            return True
        return hi is not None and (value >= hi if self.max_exclusive else value > hi)


def setting(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field with ``default`` (lists and dicts are copied per instance) declaring its
    :class:`Spec` (``help`` and the keyword constraints) in the field's metadata."""
    spec = Spec(help, **constraints)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={SPEC_KEY: spec})
    return dataclasses.field(default=default, metadata={SPEC_KEY: spec})


def spec_of(field: "dataclasses.Field[Any]") -> Optional[Spec]:
    """The Spec a dataclass field declares, or None."""
    return field.metadata.get(SPEC_KEY)


def declared(cls: type) -> Sequence[Tuple[str, Spec]]:
    """(name, Spec) of each field of dataclass ``cls`` that declares one, in field order."""
    return [(f.name, spec_of(f)) for f in dataclasses.fields(cls) if spec_of(f) is not None]
