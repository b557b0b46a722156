"""The shape of restmq/: no module takes another's private names, no function runs past 60 lines without
saying why, and the complexity limit stays on. Read with ast, nothing imported.

The layer contracts (core imports no storage, web or cli; storage no web; ...) are import-linter's, in
pyproject.toml, run by scripts/test."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "restmq"
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def crossing(importer: str, importer_package: str, target: str) -> str | None:
    """Why reaching `target` (a dotted path under restmq) from module `importer` takes a private name, or
    None. A private module (restmq.cli._common) is open to its own package; a private name inside a module
    (restmq.storage.engine._ping) is its module's alone."""
    parts = target.split(".")
    for i in range(1, len(parts)):
        if not is_private(parts[i]):
            continue
        owner = ".".join(parts[:i])
        if is_module(".".join(parts[: i + 1])):
            if not (importer_package == owner or importer_package.startswith(owner + ".")):
                return f"private module {'.'.join(parts[: i + 1])} outside {owner}"
        elif owner != importer:
            return f"private name {parts[i]} of {owner}"
    return None


def module_bindings(tree: ast.Module, importer_package: str) -> Iterator[tuple[str, str, int]]:
    """(local name, dotted restmq target, line) of every import, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "restmq":
                    local = alias.asname or alias.name.split(".")[0]
                    yield local, alias.name if alias.asname else "restmq", node.lineno
                    yield "", alias.name, node.lineno  # the import itself reaches every segment
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer_package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "restmq":
                continue
            for alias in node.names:
                yield alias.asname or alias.name, f"{base}.{alias.name}", node.lineno


def attribute_chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    names: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        names.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, names[::-1]


def private_crossings(source: str, importer: str, is_package: bool = False) -> list[str]:
    """Every place where module `importer` (given its source) takes a private name of another module."""
    tree = ast.parse(source)
    importer_package = package_of(importer, is_package)
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> the restmq module it is bound to
    for local, target, line in module_bindings(tree, importer_package):
        why = crossing(importer, importer_package, target)
        if why:
            found.append(f"{importer}:{line}: {why}")
        if local and is_module(target):
            modules[local] = target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):  # a.b.c and then a.b: the same finding, once
            chain = attribute_chain(node)
            if chain is None or chain[0] not in modules:
                continue
            target = modules[chain[0]]
            for attr in chain[1]:
                target = f"{target}.{attr}"
                if not is_module(target):
                    break
            why = crossing(importer, importer_package, target)
            if why:
                found.append(f"{importer}:{node.lineno}: {why}")
    return sorted(set(found))


def sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path


def test_no_module_takes_another_modules_private_names() -> None:
    found: list[str] = []
    for _, path in sources():
        found += private_crossings(path.read_text(), module_name(path), path.name == "__init__.py")
    assert found == [], "make the name public where it belongs, or move it:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "importer"),
    [
        ("from restmq.storage.engine import _ping", "restmq.cli.serve"),
        ("from restmq.storage import engine\nengine._ping()", "restmq.cli.serve"),
        ("import restmq.storage.engine\nrestmq.storage.engine._ping()", "restmq.cli.serve"),
        ("import restmq.storage.engine as e\ne._ping()", "restmq.cli.serve"),
        ("def f():\n    from restmq.storage.engine import _ping", "restmq.cli.serve"),
        ("from restmq.cli._common import make_client", "restmq.web.rest"),
        ("from restmq.client import _calls", "restmq.cli.add"),
        ("from ..storage.engine import _ping", "restmq.cli.serve"),
    ],
)
def test_the_private_name_check_sees(source: str, importer: str) -> None:
    assert private_crossings(source, importer) != []


@pytest.mark.parametrize(
    ("source", "importer"),
    [
        ("from restmq.cli._common import make_client", "restmq.cli.add"),  # a private module, in its package
        ("from restmq.client import _calls\n_calls.jittered_delay", "restmq.client.aio"),
        ("from restmq.client._calls import jittered_delay", "restmq.client._stream"),
        ("from restmq import errors as _server", "restmq.client.errors"),  # a private alias of a public module
        ("from restmq.storage import engine\nengine.EmbeddedEngine", "restmq.cli.serve"),
        ("import os\nos._exit(1)", "restmq.storage.engine"),  # not ours
        ("self._store = store\nself._store.__class__", "restmq.core.service"),
    ],
)
def test_the_private_name_check_allows(source: str, importer: str) -> None:
    assert private_crossings(source, importer) == []


# -- function length and complexity ------------------------------------------------------------------

LONG_REASON = re.compile(r"#\s*long:\s*\S.{8,}")


def functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def says_why_it_is_long(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A `# long: <reason>` on the line above the def or above its decorators, on its def line(s), or on its
    first body line."""
    top = min([d.lineno for d in node.decorator_list] + [node.lineno])
    around = lines[max(top - 2, 0) : top - 1] + lines[max(node.lineno - 2, 0) : node.body[0].lineno]
    return any(LONG_REASON.search(line) for line in around)


def long_functions(source: str, where: str) -> list[str]:
    lines = source.splitlines()
    found = []
    for node in functions(ast.parse(source)):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES and not says_why_it_is_long(lines, node):
            found.append(f"{where}:{node.lineno}: {node.name} is {length} lines")
    return found


def test_no_function_is_over_60_lines_without_saying_why() -> None:
    found: list[str] = []
    for where, path in sources():
        found += long_functions(path.read_text(), where)
    assert found == [], "split these, or put `# long: <why>` above the def:\n" + "\n".join(found)


def test_the_length_check_counts_from_the_def_and_reads_the_reason() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert long_functions(f"def f():\n{body}", "m.py") == ["m.py:1: f is 61 lines"]
    assert long_functions(f"def f():\n{body.partition(chr(10))[2]}", "m.py") == []  # 60 lines
    assert long_functions(f"# long: one table of options, read top to bottom\ndef f():\n{body}", "m.py") == []
    assert long_functions(f"@command\n# long: the options\ndef f():\n{body}", "m.py") == []
    assert long_functions(f"def f():  # long: the options of one command\n{body}", "m.py") == []
    assert long_functions(f"# long:\ndef f():\n{body}", "m.py") != []  # no reason given


def test_the_complexity_limit_stays_on() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C90" in lint["select"] and lint["mccabe"]["max-complexity"] <= 14


def test_no_complexity_waiver_without_a_reason() -> None:
    waiver = re.compile(r"#\s*noqa\b[^#\n]*\bC901\b(.*)$")
    bare = []
    for where, path in sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = waiver.search(line)
            if match and not re.search(r"\w{3,}", match.group(1)):
                bare.append(f"{where}:{number}")
    assert bare == [], "say why after the waiver (`# noqa: C901 - <why>`):\n" + "\n".join(bare)
