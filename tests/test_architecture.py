"""The layout's rules that import-linter's contracts (pyproject.toml) do not express, checked on the code itself.

* no import cycle between any two modules of the three packages (module level and deferred imports alike);
* no private name (``_x``) imported from another module;
* deferred (function-level) imports only of heavy optional dependencies, each with a comment saying which.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("snnav", "export", "hardware_sims")
# What may be imported inside a function: heavy or optional dependencies (a comment on the line says which).
DEFERRED_OK = ("lava", "hardware_sims.lava", "torch", "hardware_sims.emulator.torch_procs", "pynvml", "espeakng_loader",
               "snntorch", "norse")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mod: str, path: Path):
    """(target module or name, line, deferred, ImportFrom node or None, private name or None) for each import."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
    typing_only = {id(m) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                   for m in ast.walk(n)}
    for n in ast.walk(tree):
        if not isinstance(n, (ast.Import, ast.ImportFrom)) or id(n) in typing_only:
            continue
        if isinstance(n, ast.Import):
            for a in n.names:
                yield a.name, n.lineno, id(n) in inner, None
        else:
            base = _resolve(mod, n, path.name == "__init__.py")
            for a in n.names:
                full = f"{base}.{a.name}"
                private = a.name if a.name.startswith("_") and not a.name.startswith("__") else None
                yield (full if full in MODULES else base), n.lineno, id(n) in inner, private


def _project(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target or None


def _cycles() -> list[list[str]]:
    edges: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        for target, _, _, _ in _imports(mod, path):
            t = _project(target)
            if t and t != mod and not mod.startswith(t + "."):  # a module importing its own package is no cycle
                edges.setdefault(mod, set()).add(t)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in MODULES:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle():
    assert _cycles() == []


def test_no_private_name_crosses_a_module():
    found = [f"{path.relative_to(REPO)}:{line} imports {target}.{private}"
             for mod, path in MODULES.items() for target, line, _, private in _imports(mod, path)
             if private and _project(target) not in (None, mod)]
    assert found == []


def test_deferred_imports_are_heavy_optional_dependencies_with_a_reason():
    bad = []
    for mod, path in MODULES.items():
        lines = path.read_text().split("\n")
        for target, line, deferred, _ in _imports(mod, path):
            if not deferred:
                continue
            ok = any(target == d or target.startswith(d + ".") for d in DEFERRED_OK)
            if not ok or "#" not in lines[line - 1]:
                bad.append(f"{path.relative_to(REPO)}:{line} {target}")
    assert bad == []


@pytest.mark.parametrize("module", ["snnav.errors", "snnav.io", "snnav.records", "export.ir.nirfile"])
def test_the_base_and_the_ir_import_without_torch(module):
    import subprocess

    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0, f"{module} imports torch"
