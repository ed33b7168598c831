"""Citations of the documentation resolve, and docs/METHOD.md agrees with the configuration.

- Every ``docs/NAME.md`` named in the repository's code, configs, README.md and docs/ is a file of docs/;
  a citation with a section, ``docs/NAME.md, "Section"``, names a heading of that file; a
  ``docs/NAME.md#anchor`` names one of its headings too.
- Code cites the documentation with its path: a bare ``METHOD.md`` or ``ARCHITECTURE.md`` is refused.
- docs/METHOD.md: every backquoted configuration key exists, every default it states next to a key
  (``key = value``, ``| `key` | value |``) is the code's default, and its own links and anchors resolve.
- README.md links docs/METHOD.md.

The checkers are plain functions returning a list of problems; the tests at the end feed them broken text to
show that they fail when they should.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml

from fg_depth_core.config import Config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
METHOD_MD = DOCS / "METHOD.md"
#: Folders whose files may cite the documentation (missing ones are skipped).
CODE_DIRS = ("fg_depth_core", "fg_depth_ros", "bench", "launch", "config", "tools", "test")
#: Files outside CODE_DIRS that are scanned too.
TOP_FILES = ("README.md", "setup.py", "Makefile")
#: Tests that feed their checkers deliberately broken citations (this file and the README checks).
CHECKER_TESTS = ("test/tools/test_method_doc.py", "test/tools/test_docs.py", "test/tools/test_docgen.py")
#: Suffixes of the scanned text files.
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".xml", ".cfg", ".toml", ".rviz"}

#: ``docs/NAME.md``, then optionally ``#anchor`` or ``, "Section"`` (quotes may be escaped inside a string
#: literal, and the section may follow on the next line).
CITATION = re.compile(
    r"(?<![\w./-])docs/(?P<file>[\w-]+\.md)"
    r"(?:#(?P<anchor>[\w-]+)|,\s*\\?[\"'](?P<section>[^\"'\\\n]+)\\?[\"'])?"
)
#: A citation of a design document without its folder.
BARE = re.compile(r"(?<![\w./-])(?:METHOD|ARCHITECTURE)\.md")
#: Files that still cite METHOD.md / ARCHITECTURE.md without ``docs/``: other engineers are rewriting them in
#: issue 11 and fix their citations there. Remove an entry once its file is fixed (the test says when).
SECTIONS = tuple(Config().to_dict())
#: A configuration key (``loss.ssim_alpha``), and the same optionally backquoted as docs/METHOD.md writes it.
KEY_NAME = r"(?P<key>(?:" + "|".join(SECTIONS) + r")\.[A-Za-z_][\w.]*\w)"
KEY = r"`?" + KEY_NAME + r"`?"
#: ``key = `` (the value, or another key of a chain ``a = b = value``, follows).
ASSIGN = re.compile(KEY + r"[ \t]*=\s*")
#: ``[`a`, `b`] = [1, 2]``: two keys with their values.
PAIR = re.compile(r"\[`(?P<a>[\w.]+)`, `(?P<b>[\w.]+)`\][ \t]*=\s*\[(?P<va>[^,\]]+),\s*(?P<vb>[^\]]+)\]")
#: The value after ``key = ``: `text`, [list], true/false or a number.
VALUE = re.compile(
    r"`(?P<text>[^`]*)`|\[(?P<list>[^\]]*)\]|(?P<bool>true|false)\b|(?P<num>[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
)


# ------------------------------------------------------------------------------------------------ markdown


def headings(text: str) -> List[str]:
    """The heading texts (any level) of a Markdown text, outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
            out.append(match.group(1))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# ------------------------------------------------------------------------------------------------ citations


def scanned_files(root: Path = ROOT) -> List[Path]:
    """The files whose citations are checked: TOP_FILES, docs/*.md and the text files of CODE_DIRS, except
    CHECKER_TESTS."""
    files = [root / name for name in TOP_FILES if (root / name).is_file()]
    files += sorted((root / "docs").glob("*.md"))
    for folder in CODE_DIRS:
        if (root / folder).is_dir():
            files += sorted(
                p for p in (root / folder).rglob("*")
                if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts
                and p.relative_to(root).as_posix() not in CHECKER_TESTS
            )
    return files


def citations(text: str) -> List[Tuple[int, str, Optional[str], Optional[str]]]:
    """(line, file, anchor, section) of each ``docs/NAME.md`` citation in ``text``."""
    return [
        (text.count("\n", 0, m.start()) + 1, m.group("file"), m.group("anchor"), m.group("section"))
        for m in CITATION.finditer(text)
    ]


def citation_problems(text: str, where: str, docs: Path = DOCS) -> List[str]:
    """Problems of the citations in ``text`` (a file called ``where``) against the Markdown in ``docs``."""
    problems = []
    for line, name, anchor, section in citations(text):
        path = docs / name
        if not path.is_file():
            problems.append(f"{where}:{line}: cites docs/{name}, which does not exist")
            continue
        titles = headings(path.read_text(encoding="utf-8"))
        if section is not None and section.strip() not in titles:
            problems.append(f"{where}:{line}: docs/{name} has no section {section!r} (it has {titles})")
        if anchor is not None and anchor not in {slug(t) for t in titles}:
            problems.append(f"{where}:{line}: docs/{name} has no heading with anchor #{anchor}")
    return problems


def bare_citation_problems(files: Iterable[Path], root: Path = ROOT) -> List[str]:
    """Bare METHOD.md / ARCHITECTURE.md citations (without docs/), by file and line."""
    problems = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        if rel.startswith("docs/") or "/" not in rel:
            continue  # the docs and top-level files (README.md) may name their siblings
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in BARE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"{rel}:{line}: cite {match.group(0)} as docs/{match.group(0)}, \"Section\"")
    return problems


# ------------------------------------------------------------------------------------------- METHOD.md keys


def config_value(tree: Dict[str, Any], key: str) -> Tuple[bool, Any]:
    """(found, value) of a dotted key in a nested dict; a section counts as found."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _parse(match: "re.Match[str]") -> Any:
    if match.group("text") is not None:
        return match.group("text")
    if match.group("list") is not None:
        return yaml.safe_load(f"[{match.group('list')}]")
    if match.group("bool") is not None:
        return match.group("bool") == "true"
    return float(match.group("num"))


def _same(stated: Any, actual: Any) -> bool:
    if isinstance(actual, list):
        return isinstance(stated, list) and len(stated) == len(actual) and all(map(_same, stated, actual))
    if isinstance(actual, bool) or isinstance(stated, bool):
        return stated is actual
    if isinstance(actual, (int, float)):
        return isinstance(stated, (int, float)) and abs(float(stated) - float(actual)) <= 1e-12 * max(
            1.0, abs(float(actual))
        )
    return stated == actual


def stated_defaults(text: str) -> List[Tuple[int, str, Any]]:
    """(line, key, value) for every default docs/METHOD.md states: ``key = value`` (also chained,
    ``a = b = value``), ``[`a`, `b`] = [value_a, value_b]`` and table rows ``| `key` | value |``."""

    def line(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    out = []
    pos = 0
    while match := ASSIGN.search(text, pos):
        rest, keys = match.end(), [match.group("key")]
        while chained := ASSIGN.match(text, rest):
            keys.append(chained.group("key"))
            rest = chained.end()
        value = VALUE.match(text, rest)
        if value is not None:
            out += [(line(match.start()), key, _parse(value)) for key in keys]
        pos = rest
    for match in PAIR.finditer(text):
        for key, raw in ((match.group("a"), match.group("va")), (match.group("b"), match.group("vb"))):
            value = VALUE.fullmatch(raw.strip())
            if value is not None:
                out.append((line(match.start()), key, _parse(value)))
    for match in re.finditer(r"^\| `" + KEY_NAME + r"` \| (?P<cell>[^|]+?) \|", text, re.M):
        value = VALUE.fullmatch(match.group("cell").strip())
        if value is not None:
            out.append((line(match.start()), match.group("key"), _parse(value)))
    return out


def method_problems(text: str, defaults: Dict[str, Any], docs: Path = DOCS) -> List[str]:
    """Unknown keys, defaults that differ from the code's, and broken links or anchors in a METHOD.md text."""
    problems = []
    for match in re.finditer(r"`" + KEY_NAME, text):
        if re.search(r"\.(py|md|ya?ml)$", match.group("key")):
            continue  # a file name (`augment.py`), not a key
        if not config_value(defaults, match.group("key"))[0]:
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"METHOD.md:{line}: `{match.group('key')}` is not a configuration key")
    for line, key, stated in stated_defaults(text):
        found, actual = config_value(defaults, key)
        if found and not _same(stated, actual):
            problems.append(f"METHOD.md:{line}: states {key} = {stated!r}, the code's default is {actual!r}")
    anchors = {slug(t) for t in headings(text)}
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^(https?:|mailto:)", link):
            continue
        target, _, anchor = link.partition("#")
        if target and not (docs / target).exists():
            problems.append(f"METHOD.md: link to {target}: no such file in docs/")
        elif not target and anchor not in anchors:
            problems.append(f"METHOD.md: link to #{anchor}: no such heading")
    return problems


# ------------------------------------------------------------------------------------------------ the tests


def test_every_docs_citation_resolves():
    files = scanned_files()
    problems, count = [], 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        count += len(citations(text))
        problems += citation_problems(text, path.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)
    # The scan sees the code's citations (a broken pattern would find nothing and pass).
    assert count > 30


def test_the_code_cites_sections_of_method_md():
    sections = {
        section
        for path in scanned_files()
        if path.suffix == ".py"
        for _, name, _, section in citations(path.read_text(encoding="utf-8"))
        if name == "METHOD.md" and section
    }
    expected = {"Notation", "Losses and masks", "Data augmentation", "Teachers", "Scale", "Evaluation"}
    assert expected <= sections, sections


def test_design_documents_are_cited_with_their_folder():
    problems = bare_citation_problems(scanned_files())
    assert not problems, "\n".join(problems)


def test_method_md_agrees_with_the_config():
    text = METHOD_MD.read_text(encoding="utf-8")
    problems = method_problems(text, Config().to_dict())
    assert not problems, "\n".join(problems)
    # Enough defaults are checked to matter (a broken pattern would find none and pass).
    assert len({key for _, key, _ in stated_defaults(text)}) >= 40


def test_method_md_lists_every_loss_preset():
    from fg_depth_core.config import LOSS_PRESETS, PAPER_PRESETS

    text = METHOD_MD.read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)`[^|]*\|(.*)$", text, re.M)}
    for name, preset in LOSS_PRESETS.items():
        assert name in rows, f"docs/METHOD.md's preset table lacks {name}"
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[0].startswith(f"`{preset['photometric_mask']}`"), (name, cells)
        assert cells[1:3] == ["yes" if preset["use_dr"] else "no", "yes" if preset["use_fp"] else "no"], name
        if name not in PAPER_PRESETS:
            assert "ours" in cells[3], f"{name} is our extension: say so in its row"


def test_readme_links_method_md():
    assert "](docs/METHOD.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------- the checkers fail


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "# Method\n\n## Scale\n\n```\n# not a heading\n```\n## Known differences, 13\n"
    (docs / "METHOD.md").write_text(text)
    return docs


def test_citation_checker_catches_missing_files_sections_and_anchors(tmp_path):
    docs = _docs(tmp_path)
    prefix = "docs" + "/"  # split so that this file's own scan does not see the bad citations
    text = (
        f'"""Depth (see {prefix}METHOD.md, "Scale").\n'
        f'Losses ({prefix}METHOD.md, "Losses").\n'
        f"Wrapped: {prefix}METHOD.md,\n    'not a heading'\n"
        f"Missing: {prefix}NOSUCH.md and {prefix}METHOD.md#nowhere, fine: {prefix}METHOD.md#scale\n"
        f'Escaped in a literal: "({prefix}METHOD.md, \\"Known differences, 13\\")"\n'
        f"Not ours: ../shared/{prefix}OTHER.md\n"
    )
    found = citations(text)
    assert [(f, a, s) for _, f, a, s in found] == [
        ("METHOD.md", None, "Scale"),
        ("METHOD.md", None, "Losses"),
        ("METHOD.md", None, "not a heading"),
        ("NOSUCH.md", None, None),
        ("METHOD.md", "nowhere", None),
        ("METHOD.md", "scale", None),
        ("METHOD.md", None, "Known differences, 13"),
    ]
    problems = citation_problems(text, "x.py", docs)
    assert len(problems) == 4, problems
    assert "x.py:2: docs/METHOD.md has no section 'Losses'" in problems[0]
    assert "x.py:3: docs/METHOD.md has no section 'not a heading'" in problems[1]
    assert "x.py:5: cites docs/NOSUCH.md, which does not exist" in problems[2]
    assert "no heading with anchor #nowhere" in problems[3]


def test_bare_citation_checker(tmp_path):
    (tmp_path / "pkg").mkdir()
    cited, fixed, clean = tmp_path / "pkg" / "a.py", tmp_path / "pkg" / "b.py", tmp_path / "pkg" / "c.py"
    cited.write_text('"""Losses (ARCHITECTURE' + '.md, "Rooms")."""\n')
    fixed.write_text('"""Losses (docs/METHOD.md, "Scale")."""\n')
    clean.write_text('"""Losses (docs/METHOD.md, "Scale"); see METHOD' + '.md."""\n')
    files = [cited, fixed, clean]
    problems = bare_citation_problems(files, tmp_path)
    assert len(problems) == 2, problems
    assert problems[0].startswith("pkg/a.py:1: cite ARCHITECTURE.md as docs/ARCHITECTURE.md")
    assert problems[1].startswith("pkg/c.py:1: cite METHOD.md")


def test_method_checker_catches_wrong_defaults_unknown_keys_and_links(tmp_path):
    docs = _docs(tmp_path)
    text = (
        "# Method\n\n## Scale\n\nα = `loss.ssim_alpha` = 0.9, `loss.lambda_dr` = `loss.lambda_fp` = 2.0,\n"
        "`augment.graft_ratios` = [0.2, 0.4], `model.encoder` = `resnet50`, `eval.garg_crop` = false,\n"
        "δ = loss.prior_mask_max_depth = 80 m (right), `loss.no_such_key` is read.\n\n"
        "| key | default |\n|---|---|\n| `teacher.sgbm.block_size` | 7 |\n"
        "| `teacher.sgbm.mode` | `sgbm_3way` |\n\n"
        "[a](CONFIG.md) [b](#scale) [c](#nowhere) [d](METHOD.md)\n"
    )
    stated = {(key, str(value)) for _, key, value in stated_defaults(text)}
    assert ("loss.prior_mask_max_depth", "80.0") in stated and ("teacher.sgbm.mode", "sgbm_3way") in stated
    problems = method_problems(text, Config().to_dict(), docs)
    joined = "\n".join(problems)
    for expected in (
        "states loss.ssim_alpha = 0.9",
        "states loss.lambda_dr = 2.0",
        "states loss.lambda_fp = 2.0",
        "states augment.graft_ratios = [0.2, 0.4]",
        "states model.encoder = 'resnet50'",
        "states eval.garg_crop = False",
        "states teacher.sgbm.block_size = 7.0",
        "`loss.no_such_key` is not a configuration key",
        "link to CONFIG.md: no such file",
        "link to #nowhere: no such heading",
    ):
        assert expected in joined, (expected, problems)
    assert len(problems) == 10, problems
