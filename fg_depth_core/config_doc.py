"""The configuration reference, ``docs/CONFIG.md``, rendered from the config dataclasses themselves.

Nothing is written twice: sections are found by walking :class:`fg_depth_core.config.Config` (every field
whose type is a dataclass is a section, at any depth, wherever that dataclass is defined), and for each key

- the type comes from the annotation, the default from ``Config()``;
- the description is the ``#:`` comment block right above the field (or on its line, or a string literal
  right below it), read from the source with ``ast``; a field without one but named in a sibling's comment
  points there;
- the allowed values come from the section's ``validate`` method: ``_choice(where, "key", value, CHOICES)``
  calls give the choices (``CHOICES`` is evaluated in the section's module), ``_positive`` gives "> 0", and
  ``raise ConfigError(f"{where}.key: expected RULE, got ...")`` gives RULE (also inside a ``for key in
  ("a", "b")`` loop).

So a new section or key, or a changed default, comment or rule, shows up in the reference once it is
regenerated, and test/tools/test_docs.py fails until it is:

    python -m fg_depth_core.config_doc                      # writes docs/CONFIG.md (run in the repository)
    python -m fg_depth_core.config_doc --check docs/CONFIG.md   # exit status 1 if it is out of date
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import json
import re
import sys
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from fg_depth_core.config import Config

#: Where the reference goes, relative to the repository root (the working directory of the command).
DEFAULT_OUT = "docs/CONFIG.md"
#: The command that regenerates it (named in the file and in failure messages).
REGENERATE = "python -m fg_depth_core.config_doc"
#: Functions of validate() whose calls ``f(where, "key", value, CHOICES)`` declare allowed choices.
CHOICE_HELPERS = ("_choice",)
#: Functions of validate() whose calls ``f(where, "key", value)`` require value > 0.
POSITIVE_HELPERS = ("_positive",)


@dataclass
class KeyDoc:
    """One configuration key: dotted name, type, default, allowed values and description (Markdown)."""

    key: str
    type: str
    default: Any
    allowed: str
    description: str


@dataclass
class SectionDoc:
    """One section (a dataclass in the tree): dotted name, its class, the docstring and its keys."""

    name: str
    cls: type
    description: str
    keys: List[KeyDoc] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ source reading


@dataclass
class _ClassSource:
    """What the source of one config dataclass says: docstring, field comments and validation rules."""

    docstring: str = ""
    comments: Dict[str, str] = field(default_factory=dict)
    choices: Dict[str, List[str]] = field(default_factory=dict)
    rules: Dict[str, List[str]] = field(default_factory=dict)


_SOURCES: Dict[type, _ClassSource] = {}


def class_source(cls: type) -> _ClassSource:
    """Docstring, ``#:`` comments per field and validation rules per field of dataclass ``cls`` (cached)."""
    if cls in _SOURCES:
        return _SOURCES[cls]
    out = _ClassSource()
    try:
        text = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (compiled, interactive): keys are still listed
        _SOURCES[cls] = out
        return out
    lines = text.splitlines()
    node = ast.parse(text).body[0]
    if not isinstance(node, ast.ClassDef):
        _SOURCES[cls] = out
        return out
    out.docstring = ast.get_docstring(node) or ""
    out.comments = _field_comments(node, lines)
    validate = next(
        (s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "validate"), None
    )
    if validate is not None:
        namespace = vars(sys.modules[cls.__module__])
        _collect_rules(validate, namespace, out, {})
    _SOURCES[cls] = out
    return out


def _comment_text(line: str) -> Optional[str]:
    """The text of a ``#:`` comment line, or None."""
    stripped = line.strip()
    if stripped.startswith("#:"):
        return stripped[2:].strip()
    return None


def _field_comments(node: ast.ClassDef, lines: List[str]) -> Dict[str, str]:
    """{field: description} from ``#:`` blocks above a field, a trailing ``#:`` or a string below it."""
    out: Dict[str, str] = {}
    body = node.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        parts: List[str] = []
        row = stmt.lineno - 2  # 0-based index of the line above the statement
        block: List[str] = []
        while row >= 0:
            text = _comment_text(lines[row])
            if text is None:
                break
            block.insert(0, text)
            row -= 1
        parts.extend(block)
        end_line = lines[(stmt.end_lineno or stmt.lineno) - 1]
        if "#:" in end_line:
            parts.append(end_line.split("#:", 1)[1].strip())
        following = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            parts.append(inspect.cleandoc(following.value.value))
        text = " ".join(p for p in parts if p)
        if text:
            out[stmt.target.id] = text
    return out


def call_name(call: ast.Call) -> str:
    """The called function's name of ``call`` (f(...) -> "f", a.b.f(...) -> "f")."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _collect_rules(
    node: ast.AST, namespace: Dict[str, Any], out: _ClassSource, loop_keys: Dict[str, Tuple[str, ...]]
) -> None:
    """Walk validate()'s body, remembering ``for NAME in ("a", "b")`` loops, and record choices and rules."""
    if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
        try:
            values = ast.literal_eval(node.iter)
        except ValueError:
            values = None
        if isinstance(values, (tuple, list)) and all(isinstance(v, str) for v in values):
            inner = {**loop_keys, node.target.id: tuple(values)}
            for child in node.body + node.orelse:
                _collect_rules(child, namespace, out, inner)
            return
    if isinstance(node, ast.Call):
        name = call_name(node)
        keys = _keys_of(node.args[1], loop_keys) if len(node.args) >= 2 else []
        if name in CHOICE_HELPERS and len(node.args) >= 4:
            choices = _evaluate(node.args[3], namespace)
            if isinstance(choices, (tuple, list)):
                for key in keys:
                    out.choices.setdefault(key, [str(c) for c in choices])
        elif name in POSITIVE_HELPERS:
            for key in keys:
                _add_rule(out, key, "> 0")
    if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
        message = node.exc.args[0]
        if isinstance(message, ast.JoinedStr):
            for key, rule in _message_rules(message, namespace, loop_keys):
                _add_rule(out, key, rule)
    for child in ast.iter_child_nodes(node):
        _collect_rules(child, namespace, out, loop_keys)


def _keys_of(node: ast.AST, loop_keys: Dict[str, Tuple[str, ...]]) -> List[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in loop_keys:
        return list(loop_keys[node.id])
    return []


def _add_rule(out: _ClassSource, key: str, rule: str) -> None:
    rules = out.rules.setdefault(key, [])
    if rule and rule not in rules:
        rules.append(rule)


def _evaluate(node: ast.AST, namespace: Dict[str, Any]) -> Any:
    """The value of a constant expression in the section's module (None when it needs more than that)."""
    try:
        return eval(compile(ast.Expression(body=node), "<config_doc>", "eval"), dict(namespace))
    except Exception:
        return None


_WHERE = "\x00where\x00"
_KEY = "\x00key\x00"


def _message_rules(
    message: ast.JoinedStr, namespace: Dict[str, Any], loop_keys: Dict[str, Tuple[str, ...]]
) -> List[Tuple[str, str]]:
    """(key, rule) pairs of a validation message ``f"{where}.KEY: expected RULE, got ..."``."""
    text = ""
    loop_name = None
    for value in message.values:
        if isinstance(value, ast.Constant):
            text += str(value.value)
        elif isinstance(value, ast.FormattedValue):
            expr = value.value
            if isinstance(expr, ast.Name) and expr.id == "where":
                text += _WHERE
            elif isinstance(expr, ast.Name) and expr.id in loop_keys:
                text += _KEY
                loop_name = expr.id
            else:
                text += _render_value(expr, namespace)
    match = re.match(
        rf"^{re.escape(_WHERE)}\.({re.escape(_KEY)}|[A-Za-z_]\w*): expected (.+?)(?:, got .*)?$", text, re.S
    )
    if not match:
        return []
    rule = re.sub(r"\b(\w+) \(\1\)", r"\1", match.group(2).strip())
    if match.group(1) == _KEY:
        return [(key, rule) for key in loop_keys[loop_name]] if loop_name else []
    return [(match.group(1), rule)]


def _render_value(expr: ast.AST, namespace: Dict[str, Any]) -> str:
    """How an interpolated value reads in a rule: ``self.x`` -> x, module constants -> their value."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
        return expr.attr
    if isinstance(expr, ast.Name) and expr.id in namespace:
        value = namespace[expr.id]
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return str(value)
    return ast.unparse(expr)


# ------------------------------------------------------------------------------------------ the tree


def type_name(tp: Any) -> str:
    """A reader's name of a field type: int, float, str, bool, list[float], str or null, ..."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple, List, Tuple):
        inner = [a for a in args if a is not Ellipsis]
        return f"list[{type_name(inner[0])}]" if inner else "list"
    if origin in (dict, Dict):
        return f"map[{type_name(args[0])}, {type_name(args[1])}]" if args else "map"
    if tp is Any:
        return "any"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def sections(root: Any = None) -> List[SectionDoc]:
    """Every section of the tree under ``root`` (default ``Config()``), depth first in field order."""
    root = Config() if root is None else root
    out: List[SectionDoc] = []
    _walk(root, "", out)
    return out


def _walk(obj: Any, prefix: str, out: List[SectionDoc]) -> None:
    cls = type(obj)
    source = class_source(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # annotations naming something out of reach (a class local to a function)
        hints = {}
    section = SectionDoc(prefix, cls, _markdown(source.docstring))
    out.append(section)
    children = []
    names = [f.name for f in dataclasses.fields(cls)]
    for name in names:
        value = getattr(obj, name)
        key = f"{prefix}.{name}" if prefix else name
        if dataclasses.is_dataclass(value):
            children.append((value, key))
            continue
        section.keys.append(
            KeyDoc(
                key=key,
                type=type_name(hints.get(name, type(value))),
                default=value,
                allowed=_allowed(source, name),
                description=_description(source, name, names, prefix),
            )
        )
    for value, key in children:
        _walk(value, key, out)


def _allowed(source: _ClassSource, name: str) -> str:
    parts = []
    if name in source.choices:
        parts.append("one of " + ", ".join(f"`{c}`" for c in source.choices[name]))
    parts.extend(source.rules.get(name, []))
    return "; ".join(parts)


def _description(source: _ClassSource, name: str, names: List[str], prefix: str) -> str:
    if name in source.comments:
        return _markdown(source.comments[name])
    pattern = rf"\b{re.escape(name)}\b"
    # An earlier key whose comment names this one (a comment covering a group: width/height, start/stride).
    earlier = names[: names.index(name)]
    mentions = [other for other in earlier if re.search(pattern, source.comments.get(other, ""))]
    if mentions:
        return "See " + ", ".join(f"`{prefix + '.' if prefix else ''}{m}`" for m in mentions) + "."
    if re.search(rf"``{re.escape(name)}``", source.docstring):
        return "See the section's description."
    return ""


def _markdown(text: str) -> str:
    """Docstring/comment text as one Markdown paragraph per blank-line-separated block (rST `` -> `)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def format_default(value: Any) -> str:
    """A default as it is written in YAML (JSON flow style, which YAML reads): "", 0.0001, [0.75], true."""
    try:
        return json.dumps(value)
    except TypeError:
        return json.dumps(str(value))


def table_cell(text: Any) -> str:
    """``text`` made safe for a Markdown table cell (pipes escaped, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces -> hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


# ------------------------------------------------------------------------------------------ rendering


def render(root: Any = None) -> str:
    """The whole Markdown reference."""
    docs = sections(root)
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from the config dataclasses; do not edit by hand. -->",
        "",
        "Every key of fg-depth's configuration tree (fg_depth_core/config.py) with its type, default, "
        "allowed values and meaning. A YAML file passed with `--config` lists only the keys that differ from "
        "these defaults (config/default.yaml lists them all); `--set section.key=value` overrides one key, "
        "its value read as YAML. Unknown keys and invalid values are refused when the configuration loads, "
        "with a message naming the file and the key. Every checkpoint and exported model stores the "
        "complete configuration it was made with.",
        "",
        "Sections: " + ", ".join(f"[`{s.name}`](#{anchor(s.name)})" for s in docs if s.name and s.keys) + ".",
    ]
    for section in docs:
        if not section.name or (not section.keys and not section.description):
            continue
        out += ["", f"## `{section.name}`", ""]
        if section.description:
            out += [section.description, ""]
        if not section.keys:
            out.append("Subsections only.")
            continue
        out += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        for key in section.keys:
            out.append(
                f"| `{key.key}` | {key.type} | `{table_cell(format_default(key.default))}` | "
                f"{table_cell(key.allowed)} | {table_cell(key.description)} |"
            )
    return "\n".join(out) + "\n"


def check(path: Path, expected: str, command: str = REGENERATE) -> Optional[str]:
    """None when ``path`` holds ``expected``; otherwise what differs and the command that regenerates it."""
    if not path.is_file():
        return f"{path}: missing; generate it with: {command}"
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return None
    diff = difflib.unified_diff(
        actual.splitlines(), expected.splitlines(), f"{path} (committed)", f"{path} (generated)",
        lineterm="", n=1,
    )
    shown = list(diff)[:40]
    return f"{path} is out of date; regenerate it with: {command}\n" + "\n".join(shown)


def run_cli(
    argv: Optional[List[str]],
    render_text: Callable[[], str],
    default_out: str,
    command: str,
    description: str,
) -> int:
    """The command line shared by the generated documents: write ``default_out`` (or ``--out``), or
    ``--check FILE`` against the generated text (exit status 1 and a diff when it differs)."""
    parser = argparse.ArgumentParser(prog=command, description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--out", default=default_out, help=f"file to write, '-' = stdout (default: {default_out})"
    )
    group.add_argument(
        "--check", metavar="FILE", help="compare FILE with the generated text; exit status 1 if it differs"
    )
    args = parser.parse_args(argv)
    text = render_text()
    if args.check:
        problem = check(Path(args.check), text, command)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
        return 0
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(
        argv, render, DEFAULT_OUT, REGENERATE,
        "Write the configuration reference (Markdown), generated from the config dataclasses. Run it in the "
        "repository root.",
    )


if __name__ == "__main__":
    sys.exit(main())
