"""Declared settings: every configuration key and every node parameter states its help, allowed values and
bounds next to its default, once, in a :class:`Spec`. Validation (:meth:`Spec.problem`,
:func:`field_problems`), the generated references (docs/CONFIG.md, docs/NODE.md: :meth:`Spec.allowed`) and
ROS parameter descriptors all read that one declaration.

A Spec checks a value that already has the right type (the config loader and the node's parameter reader
convert types first); rules that relate two settings (max_depth > min_depth) or need code are written in
``rule`` for the reader and checked by the owner, which knows both values.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

#: The key of a dataclass field's metadata that holds its Spec.
SPEC_KEY = "spec"


@dataclass(frozen=True)
class Spec:
    """What one setting means and which values it allows.

    help: what it does, with units. choices: the allowed values (any other is refused). minimum, maximum:
    inclusive bounds, or exclusive with min_exclusive / max_exclusive; infinities and NaN are outside any
    bound. multiple_of: integers must be a multiple of it; odd: integers must be odd. pattern: a regular
    expression a string must match in full, pattern_help the same in words (errors and references show
    the words instead of the expression). rule: a constraint the owner checks because it involves other
    settings or needs code (references show it; :meth:`problem` does not check it). each: the constraints
    apply to every element of a list value, which must also have at least min_items elements.

    A declaration that cannot be met or mixes constraints of different kinds (bounds with choices,
    min_items without each, ...) raises ValueError when it is made.
    """

    help: str
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    multiple_of: Optional[int] = None
    odd: bool = False
    pattern: Optional[str] = None
    pattern_help: str = ""
    rule: str = ""
    each: bool = False
    min_items: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        problem = self._declaration_problem()
        if problem:
            raise ValueError(f"Spec({self.help[:40]!r}...): {problem}")

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
            items_ok = isinstance(value, (list, tuple)) and len(value) >= self.min_items
            if items_ok and all(self._item_ok(item) for item in value):
                return None
        elif self._item_ok(value):
            return None
        return f"expected {self.expected()}, got {value!r}"

    # ---------------------------------------------------------------------------------------- helpers

    def _item_ok(self, value: Any) -> bool:
        if self.choices and value not in self.choices:
            return False
        if self._out_of_bounds(value):
            return False
        integer = isinstance(value, int) and not isinstance(value, bool)
        if integer and ((self.multiple_of and value % self.multiple_of) or (self.odd and value % 2 == 0)):
            return False
        return not (self.pattern and isinstance(value, str) and not re.fullmatch(self.pattern, value))

    def _declaration_problem(self) -> str:
        if not self.help.strip():
            return "help is empty"
        bounded = self.minimum is not None or self.maximum is not None
        if self.choices and (bounded or self.multiple_of or self.odd or self.pattern):
            return "choices exclude bounds, multiple_of, odd and pattern"
        if (self.min_exclusive and self.minimum is None) or (self.max_exclusive and self.maximum is None):
            return "an exclusive flag without its bound"
        if self.minimum is not None and self.maximum is not None:
            if self.minimum > self.maximum or (
                self.minimum == self.maximum and (self.min_exclusive or self.max_exclusive)
            ):
                return f"no value lies between minimum {self.minimum} and maximum {self.maximum}"
        if self.multiple_of is not None and self.multiple_of < 1:
            return f"multiple_of must be >= 1, got {self.multiple_of}"
        if self.odd and self.multiple_of and self.multiple_of % 2 == 0:
            return f"odd numbers are never multiples of {self.multiple_of}"
        if self.pattern_help and not self.pattern:
            return "pattern_help without a pattern"
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                return f"pattern {self.pattern!r} is not a regular expression: {exc}"
        if self.min_items and not self.each:
            return "min_items applies to lists (each=True)"
        if self.min_items < 0:
            return f"min_items must be >= 0, got {self.min_items}"
        return ""

    def _describe(self, markdown: bool) -> str:
        parts = []
        if self.choices:
            listed = ", ".join(f"`{c}`" for c in self.choices) if markdown else str(list(self.choices))
            parts.append(f"one of {listed}")
        number = self._number()
        if number:
            parts.append(number)
        if self.pattern:
            shown = f"`{self.pattern}`" if markdown else self.pattern
            parts.append(self.pattern_help or f"matching {shown}")
        text = " and ".join(parts)
        if self.each:
            head = f"a list of at least {self.min_items}" if self.min_items > 1 else (
                "a non-empty list" if self.min_items == 1 else "a list"
            )
            text = head + (f", each {text}" if text else "")
        return text

    def _number(self) -> str:
        """Bounds, multiple and oddness as one phrase: "> 0", "a value in [0, 1)", "a positive multiple of
        16", "a multiple of 32 that is >= 64", "an odd number that is >= 1"."""
        if self.multiple_of:
            kind = f"multiple of {self.multiple_of}"
        else:
            kind = "odd number" if self.odd else ""
        if kind and self.minimum == 0 and self.min_exclusive and self.maximum is None:
            return f"a positive {kind}"
        kind = f"{'an' if kind.startswith('o') else 'a'} {kind}" if kind else ""
        bounds = self._bounds()
        if kind and bounds:
            return f"{kind} that is {bounds}"
        return kind or bounds

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


def field_problems(obj: Any) -> List[Tuple[str, str]]:
    """(field name, "expected ..., got ...") for each field of dataclass instance ``obj`` whose value breaks
    its declared Spec, in field order. Fields without a Spec (sub-sections) are not entered."""
    out = []
    for name, spec in declared(type(obj)):
        problem = spec.problem(getattr(obj, name))
        if problem is not None:
            out.append((name, problem))
    return out
