"""The layering rule and no import cycles, read from the source with ast (nothing is imported).

- ``realtime/`` never imports torch, ``export/``, ``models/`` or ``recipes/`` (the CLI's registrar in
  ``realtime/cli/main.py`` is the one exception: it adds the parsers of ``export/cli.py`` and
  ``models/train/cli.py``, whose modules import no torch at import time; and benchmark handlers that take a
  PyTorch checkpoint import ``export`` lazily, only when asked).
- ``models/`` imports only torch-free maths and errors of ``realtime/`` (listed below) and never ``export/`` or
  ``recipes/``.
- ``export/`` never imports ``recipes/``.
- No cycles among modules, lazy imports included.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "export", "models", "recipes")
# What models/ may use from realtime/: maths, contracts, errors (no sessions, no I/O, no CLI beyond the shared
# argument helpers that command modules register through).
MODELS_MAY_IMPORT = {
    "realtime.errors", "realtime.boxes", "realtime.detect.yolo", "realtime.preprocess", "realtime.contract",
    "realtime.face.verification", "realtime.face.align", "realtime.cli.args", "realtime.config",
    "realtime.runtime", "realtime.build", "realtime.face.enroll", "realtime.face.detector",
    "realtime.io.capture",  # face_folders reads images the way the runtime does
    "models.dlib_eval",  # eval faces --dlib-reference/--against-dlib: torch-free comparison statistics
}
REALTIME_LAZY_EXPORT_OK = {"realtime.cli.main", "realtime.cli.bench"}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        out = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")
                    parts = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "torch":
                    out.add("torch")
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    out.add(name)
        graph[mod] = out
    return graph


GRAPH = _imports(_modules())


def test_realtime_never_imports_torch_models_or_recipes():
    bad = sorted((m, t) for m, ts in GRAPH.items() if m.startswith("realtime") for t in ts
                 if t == "torch" or t.startswith(("models", "recipes"))
                 and not (m == "realtime.cli.main" and t in ("models.train", "models.train.cli")))
    assert not bad, bad


def test_realtime_imports_export_only_where_the_cli_registers_it():
    bad = sorted((m, t) for m, ts in GRAPH.items() if m.startswith("realtime") for t in ts
                 if t.startswith("export") and m not in REALTIME_LAZY_EXPORT_OK)
    assert not bad, bad


def test_models_import_only_torch_free_maths_of_realtime_and_never_export():
    bad = sorted((m, t) for m, ts in GRAPH.items() if m.startswith("models") for t in ts
                 if t.startswith(("export", "recipes")) or (t.startswith("realtime") and t not in MODELS_MAY_IMPORT))
    assert not bad, bad


def test_export_never_imports_recipes():
    bad = sorted((m, t) for m, ts in GRAPH.items() if m.startswith("export") for t in ts if t.startswith("recipes"))
    assert not bad, bad


def test_no_import_cycles():
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
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
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles
