"""The code's shape: module sizes, no import cycles, and one frame's path as docs/architecture.md describes it."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "streamseg"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """streamseg modules ``name`` imports, at module level or inside functions (a submodule counts as itself)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def _documented_path() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- frame-path -->(.*?)<!-- /frame-path -->", text, re.S).group(1)
    return set(re.findall(r"`([a-z_/]+)`", block))


@pytest.mark.timeout(120)
def test_one_frame_takes_the_documented_path_and_never_doubles_back():
    spec = importlib.util.spec_from_file_location("frame_path", ROOT / "benchmarks" / "frame_path.py")
    frame_path = importlib.util.module_from_spec(spec)
    sys.modules["frame_path"] = frame_path
    spec.loader.exec_module(frame_path)
    result = frame_path.trace(["video"], "torch")
    assert set(result["modules"]) == _documented_path(), "update docs/architecture.md with the path a frame takes now"
    own = {path: n for path, n in result["double_backs"].items() if not path.startswith("model/")}
    assert not own, own
