"""The package's shape: no import circle (lazy imports included), layers that point one way, and a
command line that starts without the heavy libraries."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "qapbo"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never executed)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for sub in ast.walk(node):
                lines.add(getattr(sub, "lineno", -1))
    return lines


def imports_of() -> dict[str, set[str]]:
    """Every qapbo module and the qapbo modules it imports anywhere in its body (functions included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        out = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("qapbo"):
                base = node.module
                for alias in node.names:  # `from qapbo.data import pythia` imports the module qapbo.data.pythia
                    sub = f"{base}.{alias.name}"
                    out.add(sub if sub in modules else base)
            elif isinstance(node, ast.ImportFrom) and node.level:
                pytest.fail(f"{name} uses a relative import; qapbo imports absolutely")
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("qapbo")}
        graph[name] = {m for m in out if m != name and m in modules}
    # the lazy __init__ files name their modules in strings: those are edges too
    for name, path in modules.items():
        if path.name == "__init__.py":
            text = path.read_text()
            graph[name] |= {m for m in modules if m != name and f'"{m}"' in text}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_and_every_module_imports():
    graph = imports_of()
    packages = {m for m, p in ((module_name(p), p) for p in PACKAGE.rglob("__init__.py"))}
    # a package's lazy __init__ names its modules, and a module may import its package's siblings: ignore
    # the edges from a module to its own package, which only re-exports
    modules_only = {m: {n for n in deps if n not in packages} for m, deps in graph.items() if m not in packages}
    assert find_cycle(modules_only) is None, find_cycle(modules_only)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in sorted(graph))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr


#: Which subpackages each may import (besides the top-level modules records, errors, progress, _version).
LAYERS = {
    "data": set(),
    "nn": set(),
    "cost": {"nn"},
    "train": {"data", "nn", "cost"},
    "compare": {"cost"},  # comparison reads stored results: it never trains, builds or runs a study
    "export": {"data", "nn", "cost", "train", "study"},  # train: the HGQ2 loader of a stored Keras model
    "study": {"data", "nn", "cost", "train", "compare"},
}


def test_layers_point_one_way():
    graph = imports_of()
    for m, deps in graph.items():
        parts = m.split(".")
        if len(parts) < 3 or parts[1] not in LAYERS:
            continue
        for d in deps:
            dparts = d.split(".")
            assert dparts[:2] != ["qapbo", "cli"], f"{m} imports the command line"
            if len(dparts) >= 2 and dparts[1] in LAYERS and dparts[1] != parts[1]:
                assert dparts[1] in LAYERS[parts[1]], f"{m} imports {d}: {parts[1]} may not depend on {dparts[1]}"
    for d in graph["qapbo.records"] | graph["qapbo.errors"] | graph["qapbo.progress"]:
        assert d in ("qapbo.errors",), f"the vocabulary modules sit below everything, yet import {d}"


def test_the_command_line_imports_no_heavy_library():
    code = ("import sys, qapbo.cli\nqapbo.cli.build_parser()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'brevitas', 'sklearn', 'matplotlib', 'optuna', 'numpy', 'scipy', 'hls4ml', 'da4ml'}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_the_public_api_is_lazy_and_complete():
    # every public name resolves, and to the object, not to a submodule of the same name (which wins
    # once imported: hence no name of a package's API may be one of its modules)
    code = ("import sys, types, importlib, qapbo\n"
            "heavy = {'torch', 'sklearn', 'matplotlib'} & {m.split('.')[0] for m in sys.modules}\n"
            "pkgs = [qapbo] + [importlib.import_module(f'qapbo.{p}') for p in "
            "('data', 'nn', 'cost', 'train', 'study', 'compare', 'export')]\n"
            "for p in pkgs:\n"
            "    for n in p.__all__:\n"
            "        importlib.import_module(getattr(p, '_NAMES', {}).get(n, 'qapbo'))\n"
            "bad = [f'{p.__name__}.{n}' for p in pkgs for n in p.__all__ if isinstance(getattr(p, n, None), "
            "(types.ModuleType, type(None)))]\n"
            "print(sorted(heavy), bad)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[] []"
