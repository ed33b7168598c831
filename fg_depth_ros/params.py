"""ROS 2 parameters declared from a dataclass, the same way fg_depth_core's config declares its keys.

A node's parameters are a (frozen) dataclass whose fields are made by :func:`param`: a default, a
:class:`~fg_depth_core.spec.Spec` (help, choices, bounds, pattern) and whether the parameter may change at
run time. A field whose type is another dataclass is a group: ``points.decimation`` is field ``decimation``
of group ``points`` (ROS 2's dot convention; ``points: {decimation: ...}`` in YAML). From that one
declaration come the parameter table (:func:`parameter_table`: name -> :class:`Param`), the descriptors
``ros2 param describe`` shows, the checks of start-up and run-time values, and the typed settings object the
node reads (:func:`build`), so no code reads a setting by string key.

Only the descriptor builder and :func:`declare` touch rclpy; the rest is plain Python.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Type, TypeVar

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor

from fg_depth_core.errors import FgDepthError
from fg_depth_core.spec import Spec, spec_of

#: Field metadata key: the parameter may change at run time.
DYNAMIC_KEY = "dynamic"
#: Largest integer the descriptors advertise (ROS parameters are int64; this is plenty for any count here).
INT_MAX = 2**31 - 1
#: The ROS 2 parameter types these tables use, by Python type (docs and messages).
ROS_TYPES = {bool: "bool", int: "integer", float: "double", str: "string"}

T = TypeVar("T")

#: Choices that YAML, ``-p name:=value`` and ``ros2 param set`` read as numbers: a string parameter offering
#: one of them also accepts the number and turns it back into the word.
NUMERIC_WORDS = ("inf", "-inf", "nan")


class ParamError(FgDepthError, ValueError):
    """A parameter has a bad value; the message names the parameter, the value and the rule."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default (whose type is the parameter's type), Spec and dynamic flag."""

    default: Any
    spec: Spec
    dynamic: bool = False

    @property
    def kind(self) -> type:
        """bool, int, float or str."""
        return type(self.default)

    @property
    def description(self) -> str:
        return self.spec.help

    @property
    def choices(self) -> tuple:
        return self.spec.choices


def param(default: Any, help: str, dynamic: bool = False, **constraints: Any) -> Any:
    """A dataclass field declaring one parameter (``constraints``: the Spec's keywords)."""
    return dataclasses.field(
        default=default, metadata={"spec": Spec(help, **constraints), DYNAMIC_KEY: dynamic}
    )


def from_setting(
    cls: type, name: str, help: Optional[str] = None, dynamic: bool = False, **constraints: Any
) -> Any:
    """A parameter field that takes its default and Spec from field ``name`` of config dataclass ``cls``,
    so that a node parameter and the configuration key it mirrors cannot drift apart; ``help`` and
    ``constraints`` replace parts of the Spec where the parameter says more."""
    source = next(f for f in dataclasses.fields(cls) if f.name == name)
    spec = spec_of(source) or Spec("")
    if help is not None:
        constraints["help"] = help
    spec = dataclasses.replace(spec, **constraints)
    return dataclasses.field(default=source.default, metadata={"spec": spec, DYNAMIC_KEY: dynamic})


def group(cls: type) -> Any:
    """A dataclass field holding parameter group ``cls`` with its defaults."""
    return dataclasses.field(default_factory=cls)


def parameter_table(cls: type, prefix: str = "") -> Dict[str, Param]:
    """Every parameter of dataclass ``cls`` by dotted name, in declaration order."""
    table: Dict[str, Param] = {}
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            table.update(parameter_table(hint, f"{prefix}{f.name}."))
            continue
        spec = spec_of(f)
        if spec is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with param() or from_setting()")
        table[prefix + f.name] = Param(f.default, spec, bool(f.metadata.get(DYNAMIC_KEY, False)))
    return table


def build(cls: Type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """An instance of ``cls`` from flat dotted ``values`` (every parameter present, already checked)."""
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = build(hint, values, f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = values[prefix + f.name]
    return cls(**kwargs)


def flatten(settings: Any, prefix: str = "") -> Dict[str, Any]:
    """The flat dotted values of a settings instance (the inverse of :func:`build`)."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def check_value(
    table: Mapping[str, Param],
    name: str,
    value: Any,
    error: Type[ParamError] = ParamError,
    owner: str = "node",
) -> Any:
    """``value`` of parameter ``name`` converted to its kind (int -> float for double parameters) and checked
    against its Spec; raises ``error`` naming the parameter otherwise."""
    if name not in table:
        raise error(f"parameter '{name}': not a {owner} parameter")
    spec = table[name]
    kind = spec.kind
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"parameter '{name}': expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise error(f"parameter '{name}': expected a finite number, got {value}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"parameter '{name}': expected an integer, got {value!r}")
    elif kind is str and isinstance(value, float) and _numeric_words(spec):
        value = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif not isinstance(value, kind):
        raise error(f"parameter '{name}': expected a {kind.__name__}, got {value!r}")
    problem = spec.spec.problem(value)
    if problem is not None:
        raise error(f"parameter '{name}': {problem}")
    return value


def _numeric_words(spec: Param) -> bool:
    return any(choice in NUMERIC_WORDS for choice in spec.choices)


def descriptor(name: str, spec: Param) -> ParameterDescriptor:
    """The ParameterDescriptor of one parameter (``ros2 param describe`` shows it)."""
    desc = ParameterDescriptor(name=name, description=spec.description, read_only=not spec.dynamic)
    constraints = [spec.spec.expected(), spec.spec.rule]
    if spec.kind is float:
        # Accept max_depth:=80 as well as 80.0 (a typed double parameter would refuse the integer): the
        # value is converted and range-checked by check_value.
        desc.dynamic_typing = True
        constraints.insert(0, "a number")
    elif spec.kind is str and _numeric_words(spec):
        desc.dynamic_typing = True  # out_of_range:=inf arrives as a double; check_value turns it into "inf"
    elif spec.kind is int and spec.spec.minimum is not None:
        top = int(spec.spec.maximum) if spec.spec.maximum is not None else INT_MAX
        desc.integer_range = [IntegerRange(from_value=int(spec.spec.minimum), to_value=top, step=1)]
    text = "; ".join(c for c in constraints if c)
    if text:
        desc.additional_constraints = text
    return desc


def declare(node: Any, table: Mapping[str, Param], error: Type[ParamError] = ParamError) -> Dict[str, Any]:
    """Declare every parameter of ``table`` on rclpy ``node`` (with descriptors) and return the checked
    values by name; a value of the wrong type or outside its bounds raises ``error`` naming it."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for name, spec in table.items():
        try:
            value = node.declare_parameter(name, spec.default, descriptor(name, spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise error(f"parameter '{name}': {exc}") from None
        values[name] = check_value(table, name, value, error, node.get_name())
    return values


def changed(
    table: Mapping[str, Param],
    settings: T,
    changes: Mapping[str, Any],
    check: Callable[[Mapping[str, Any]], T],
    error: Type[ParamError] = ParamError,
    owner: str = "node",
) -> T:
    """A new settings object: ``settings`` with run-time ``changes`` (name -> value) applied, each checked,
    and the whole set checked again by ``check`` (the rules between parameters). Names not in ``table``
    (rclpy's own parameters) are ignored; changing a read-only parameter raises ``error``."""
    updates = {}
    for name, value in changes.items():
        spec = table.get(name)
        if spec is None:
            continue
        if not spec.dynamic:
            raise error(f"parameter '{name}' is read-only: restart {owner} to change it")
        updates[name] = check_value(table, name, value, error, owner)
    return check({**flatten(settings), **updates}) if updates else settings


def help_requested(argv: Sequence[str]) -> bool:
    """True when the command line (``sys.argv`` style: program first) asks for help outside its
    ``--ros-args`` block (``ros2 run fg_depth_ros play --help``)."""
    from rclpy.utilities import remove_ros_args

    return any(arg in ("-h", "--help") for arg in remove_ros_args(list(argv))[1:])


def usage(executable: str, summary: str, table: Mapping[str, Param]) -> str:
    """The --help text of a node executable: how to run it and every parameter (type, default, rule)."""
    lines = [
        f"usage: ros2 run fg_depth_ros {executable} [--ros-args [-p NAME:=VALUE ...] [--params-file FILE]]",
        "",
        summary.replace("``", ""),
        "",
        "parameters:",
    ]
    for name, spec in table.items():
        rules = "; ".join(r for r in (spec.spec.expected(), spec.spec.rule) if r)
        kind = ROS_TYPES.get(spec.kind, spec.kind.__name__)
        mode = "dynamic" if spec.dynamic else "read-only"
        lines.append(f"  {name} ({kind}, default {spec.default!r}, {mode}{'; ' + rules if rules else ''})")
        lines.append(f"      {spec.description}")
    return "\n".join(lines)
