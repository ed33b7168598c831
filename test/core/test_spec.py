"""Declared settings (fg_depth_core.spec): what a Spec accepts, how it words it, and bad declarations."""

import dataclasses
import math

import pytest

from fg_depth_core.spec import Spec, declared, field_problems, setting, spec_of


def test_choices_accept_members_only_and_name_them():
    spec = Spec("colour", choices=("red", "green"))
    assert spec.problem("red") is None
    assert spec.problem("blue") == "expected one of ['red', 'green'], got 'blue'"
    assert spec.allowed() == "one of `red`, `green`"


@pytest.mark.parametrize(
    "kwargs, inside, outside, words",
    [
        ({"minimum": 0}, [0, 0.0, 3], [-1e-9, -1], ">= 0"),
        ({"minimum": 0, "min_exclusive": True}, [1e-12, 5], [0, 0.0, -1], "> 0"),
        ({"maximum": 2}, [2, -7], [2.0000001], "<= 2"),
        ({"maximum": 2, "max_exclusive": True}, [1.999], [2], "< 2"),
        ({"minimum": 0, "maximum": 1}, [0, 0.5, 1], [-0.1, 1.1], ">= 0 and <= 1"),
        (
            {"minimum": 0, "maximum": 1, "min_exclusive": True, "max_exclusive": True},
            [0.5],
            [0, 1],
            "a value in (0, 1)",
        ),
        ({"minimum": 0, "maximum": 1, "min_exclusive": True}, [1.0], [0.0], "a value in (0, 1]"),
        ({"minimum": 0, "maximum": 1, "max_exclusive": True}, [0.0], [1.0], "a value in [0, 1)"),
    ],
)
def test_bounds_hold_at_their_edges(kwargs, inside, outside, words):
    spec = Spec("a number", **kwargs)
    assert spec.expected() == words
    for value in inside:
        assert spec.problem(value) is None, value
    for value in outside:
        assert spec.problem(value) == f"expected {words}, got {value!r}"


def test_non_finite_numbers_are_outside_any_bound_but_pass_without_one():
    bounded = Spec("a weight", minimum=0)
    for value in (math.nan, math.inf, -math.inf):
        assert bounded.problem(value) is not None
    assert Spec("free").problem(math.nan) is None


@pytest.mark.parametrize(
    "kwargs, good, bad, words",
    [
        (
            {"multiple_of": 16, "minimum": 0, "min_exclusive": True},
            [16, 96],
            [0, 100, -16],
            "a positive multiple of 16",
        ),
        ({"multiple_of": 32, "minimum": 64}, [64, 640], [32, 100, 0], "a multiple of 32 that is >= 64"),
        ({"odd": True, "minimum": 1}, [1, 5], [4, -1, 0], "an odd number that is >= 1"),
        ({"odd": True, "minimum": 0, "min_exclusive": True}, [3], [2, -3], "a positive odd number"),
        ({"multiple_of": 8}, [0, 8, -8], [4], "a multiple of 8"),
    ],
)
def test_integer_rules_and_their_words(kwargs, good, bad, words):
    spec = Spec("an integer", **kwargs)
    assert spec.expected() == words
    assert [v for v in good if spec.problem(v) is not None] == []
    assert [v for v in bad if spec.problem(v) is None] == []


def test_pattern_must_match_in_full_and_can_be_put_in_words():
    spec = Spec("device", pattern=r"auto|cpu|cuda(:[0-9]+)?", pattern_help="auto, cpu, cuda or cuda:N")
    for value in ("auto", "cpu", "cuda", "cuda:1"):
        assert spec.problem(value) is None, value
    for value in ("gpu", "cuda:", "cuda:x", "xcpu", "cpu "):
        assert spec.problem(value) == f"expected auto, cpu, cuda or cuda:N, got {value!r}"
    plain = Spec("name", pattern=r"[a-z]+")
    assert plain.expected() == "matching [a-z]+" and plain.allowed() == "matching `[a-z]+`"


def test_each_applies_to_every_item_and_counts_them():
    ratios = Spec(
        "ratios", each=True, min_items=1, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True
    )
    assert ratios.expected() == "a non-empty list, each a value in (0, 1)"
    assert ratios.problem([0.2, 0.8]) is None
    for bad in ([], [0.5, 1.0], [0.0], 0.5, "0.5"):
        assert ratios.problem(bad) == f"expected a non-empty list, each a value in (0, 1), got {bad!r}"
    optional = Spec("milestones", each=True, minimum=0)
    assert optional.problem([]) is None and optional.problem([-1]) is not None
    assert optional.expected() == "a list, each >= 0"
    pair = Spec("pair", each=True, min_items=2, choices=("a", "b"))
    assert pair.expected() == "a list of at least 2, each one of ['a', 'b']"
    assert pair.problem(["a"]) is not None and pair.problem(["a", "c"]) is not None
    assert pair.problem(["b", "a", "a"]) is None


def test_rule_is_shown_but_left_to_the_owner():
    spec = Spec("far end", minimum=0, min_exclusive=True, rule="> min_depth")
    assert spec.allowed() == "> 0; > min_depth"
    assert spec.expected() == "> 0"
    assert spec.problem(0.05) is None  # below some min_depth, perhaps: the owner checks that
    only_rule = Spec("far end", rule="> min_depth")
    assert only_rule.allowed() == "> min_depth" and only_rule.expected() == ""


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"minimum": 2, "maximum": 1}, "no value lies between"),
        ({"minimum": 1, "maximum": 1, "max_exclusive": True}, "no value lies between"),
        ({"choices": ("a",), "minimum": 0}, "choices exclude bounds"),
        ({"min_exclusive": True}, "exclusive flag without its bound"),
        ({"min_items": 1}, "min_items applies to lists"),
        ({"pattern": "("}, "not a regular expression"),
        ({"pattern_help": "words"}, "pattern_help without a pattern"),
        ({"odd": True, "multiple_of": 4}, "odd numbers are never multiples of 4"),
        ({"multiple_of": 0}, "multiple_of must be >= 1"),
    ],
)
def test_impossible_declarations_are_refused_when_made(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Spec("something", **kwargs)


def test_help_is_required():
    with pytest.raises(ValueError, match="help is empty"):
        setting(1, "  ")


def test_setting_declares_the_spec_and_copies_mutable_defaults():
    @dataclasses.dataclass
    class Section:
        size: int = setting(3, "How many.", minimum=1)
        ratios: list = setting([0.5], "Where.", each=True, minimum=0)
        plain: int = 7

    a, b = Section(), Section()
    a.ratios.append(0.9)
    assert b.ratios == [0.5] and Section().ratios == [0.5]
    assert [name for name, _ in declared(Section)] == ["size", "ratios"]
    size_field = dataclasses.fields(Section)[0]
    assert spec_of(size_field) == Spec("How many.", minimum=1)
    assert spec_of(dataclasses.fields(Section)[2]) is None


def test_field_problems_lists_every_broken_field_in_order():
    @dataclasses.dataclass
    class Section:
        size: int = setting(3, "How many.", minimum=1)
        mode: str = setting("a", "Which.", choices=("a", "b"))
        ok: float = setting(0.5, "Fine.", maximum=1)

    assert field_problems(Section()) == []
    assert field_problems(Section(size=0, mode="c")) == [
        ("size", "expected >= 1, got 0"),
        ("mode", "expected one of ['a', 'b'], got 'c'"),
    ]
