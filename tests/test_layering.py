"""The layering rules, read from the source with ast (nothing is imported). Each rule says what may import what,
in terms of packages and layers, never as a list of today's imports; each is shown to fail on a small synthetic
tree that breaks it.

1. ``realtime/`` (serving) never imports torch. It never imports ``models/``, ``export/`` or ``recipes/`` either,
   except in command modules (``realtime/cli/``), and there only inside a function (the registrar adds the
   training and export parsers; their handlers import torch only when they run).
2. ``models/`` never imports the run loop or what assembles and drives it (``RUN_LOOP``: the pipeline, session,
   builder, API, service, batch runner, door mode, benchmarks, sample media, commands), nor ``export/`` or ``recipes/``;
   of ``realtime/cli/`` it uses only the shared argument helpers (``realtime.cli.args``), which themselves import
   nothing of ``RUN_LOOP``. And importing a ``models/`` module never loads a ``RUN_LOOP`` module through any
   chain of module-level imports.
3. ``export/`` never imports ``recipes/``.
4. Serving never imports evaluation or sample media: only tools (commands, benchmarks) import
   ``realtime.samples``.
5. The model registry ``realtime.zoo`` sits below the builder: it imports nothing of ``RUN_LOOP``.
6. No import cycles, imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "export", "models", "recipes")
TRAINING = ("models", "export", "recipes")
# The run loop and what assembles or drives it.
RUN_LOOP = ("realtime.pipeline", "realtime.session", "realtime.build", "realtime.api", "realtime.serve",
            "realtime.batch", "realtime.door.mode", "realtime.bench", "realtime.samples", "realtime.cli")
SHARED_ARGS = "realtime.cli.args"  # the argument helpers export/ and models/ register their commands through
TOOLS = ("realtime.cli", "realtime.bench", "realtime.batch.bench", "realtime.samples")
EAGER, LAZY = "eager", "lazy"  # module-level import (runs on import) / inside a function (runs when called)


def within(module: str, prefixes: str | tuple[str, ...]) -> bool:
    """True when ``module`` is one of ``prefixes`` or inside one of them (``a.b`` is within ``a``)."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def find_modules(root: Path) -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = path
    return mods


def _import_nodes(tree: ast.AST):
    """(node, how) for every import: EAGER at module level (also under if/try), LAZY inside a function."""
    stack = [(child, EAGER) for child in ast.iter_child_nodes(tree)]
    while stack:
        node, how = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, how
        inner = LAZY if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else how
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """``{module: {imported module or 'torch': EAGER|LAZY}}`` for the packages under ``root`` (EAGER wins when a
    module imports another both ways). Names resolve to the longest module that exists (``from a import b``
    is module ``a.b`` when that exists, else ``a``)."""
    mods = find_modules(root)
    graph: dict[str, dict[str, str]] = {}
    for mod, path in mods.items():
        out: dict[str, str] = {}
        is_pkg = path.name == "__init__.py"
        for node, how in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")
                    parts = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] == "torch":
                    name = "torch"
                else:
                    while name and name not in mods:
                        name = name.rpartition(".")[0]
                if name and name != mod and out.get(name) != EAGER:
                    out[name] = how
        graph[mod] = out
    return graph


def edges(graph: dict[str, dict[str, str]]):
    for mod, targets in sorted(graph.items()):
        for target, how in sorted(targets.items()):
            yield mod, target, how


# ---------------------------------------------------------------- the rules (each returns its violations)


def serving_imports_no_training(graph) -> list[tuple[str, str]]:
    """Rule 1."""
    bad = []
    for mod, target, how in edges(graph):
        if not within(mod, "realtime"):
            continue
        if target == "torch":
            bad.append((mod, target))
        elif within(target, TRAINING) and not (within(mod, "realtime.cli") and how == LAZY):
            bad.append((mod, target))
    return bad


def models_stay_below_the_run_loop(graph) -> list[tuple[str, str]]:
    """Rule 2: direct imports, the shared argument helpers' own imports, and every chain of module-level
    imports that starts in models/."""
    bad = [(mod, target) for mod, target, _how in edges(graph) if within(mod, "models")
           and (within(target, ("export", "recipes")) or (within(target, RUN_LOOP) and target != SHARED_ARGS))]
    bad += [(SHARED_ARGS, target) for target in graph.get(SHARED_ARGS, {}) if within(target, RUN_LOOP)]
    for start in (m for m in graph if within(m, "models")):
        seen, todo = {start}, [start]
        while todo:
            for target, how in graph.get(todo.pop(), {}).items():
                if how == EAGER and target in graph and target not in seen:
                    seen.add(target)
                    todo.append(target)
        bad += [(start, f"... {m}") for m in sorted(seen) if within(m, RUN_LOOP) and m != SHARED_ARGS]
    return sorted(set(bad))


def export_imports_no_recipes(graph) -> list[tuple[str, str]]:
    """Rule 3."""
    return [(m, t) for m, t, _ in edges(graph) if within(m, "export") and within(t, "recipes")]


def serving_imports_no_samples(graph) -> list[tuple[str, str]]:
    """Rule 4."""
    return [(m, t) for m, t, _ in edges(graph)
            if within(m, "realtime") and not within(m, TOOLS) and within(t, "realtime.samples")]


def zoo_sits_below_the_builder(graph) -> list[tuple[str, str]]:
    """Rule 5."""
    return [(m, t) for m, t, _ in edges(graph) if within(m, "realtime.zoo") and within(t, RUN_LOOP)]


def import_cycles(graph) -> list[list[str]]:
    """Rule 6: strongly connected components of more than one module (Tarjan), lazy imports included."""
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
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

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


RULES = [serving_imports_no_training, models_stay_below_the_run_loop, export_imports_no_recipes,
         serving_imports_no_samples, zoo_sits_below_the_builder, import_cycles]
GRAPH = import_graph(ROOT)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_the_source_tree_keeps_the_rule(rule):
    assert rule(GRAPH) == []


def test_the_graph_sees_the_packages_and_how_each_import_runs():
    # A guard against a rule passing because the graph is empty or misread.
    assert len(GRAPH) > 100 and all(within(m, PACKAGES) for m in GRAPH)
    assert GRAPH["realtime.build"]["realtime.pipeline"] == EAGER
    assert GRAPH["realtime.cli.main"]["models.train.cli"] == LAZY


# ---------------------------------------------------------------- each rule can fail


def _tree(root: Path, files: dict[str, str]) -> dict[str, dict[str, str]]:
    for pkg in PACKAGES:
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()
        path.write_text(text)
    return import_graph(root)


CLEAN = {
    "realtime/errors.py": "",
    "realtime/pipeline.py": "from realtime import errors\n",
    "realtime/zoo/__init__.py": "from realtime.errors import *\n",
    "realtime/cli/args.py": "def f():\n    from realtime import errors\n",
    "realtime/cli/main.py": "def register():\n    from models.train import cli\n    from export import cli as e\n",
    "realtime/samples/clips.py": "from realtime import errors\n",
    "realtime/bench/run.py": "from realtime.samples import clips\n",
    "models/train/cli.py": "from realtime.cli.args import f\nfrom realtime import zoo\n",
    "models/net.py": "import torch\nfrom realtime.errors import *\n",
    "export/onnx.py": "import torch\nfrom models import net\n",
    "recipes/build.py": "from export import onnx\n",
    "recipes/data.py": "",
}
BROKEN = {  # each breaks exactly one rule
    serving_imports_no_training: [
        {"realtime/face.py": "def f():\n    import torch.nn\n"},  # torch, even lazily
        {"realtime/pipeline.py": "from models import net\n"},
        {"realtime/cli/run.py": "from export import onnx\n"},  # a command module, but not lazily
    ],
    models_stay_below_the_run_loop: [
        {"models/net.py": "def f():\n    from realtime.pipeline import Pipeline\n"},
        {"models/net.py": "from realtime.cli import main\n"},
        {"models/net.py": "from recipes import data\n"},
        {"realtime/cli/args.py": "from realtime import pipeline\n"},
        {"realtime/face.py": "from realtime import pipeline\n", "models/net.py": "from realtime import face\n"},
    ],
    export_imports_no_recipes: [{"export/onnx.py": "def f():\n    from recipes.data import x\n"}],
    serving_imports_no_samples: [{"realtime/pipeline.py": "def f():\n    from realtime.samples.clips import x\n"}],
    zoo_sits_below_the_builder: [{"realtime/zoo/__init__.py": "def f():\n    from realtime import pipeline\n"}],
    import_cycles: [{"realtime/errors.py": "def f():\n    from realtime import pipeline\n"}],
}


def test_a_clean_synthetic_tree_keeps_every_rule(tmp_path):
    graph = _tree(tmp_path, CLEAN)
    assert {rule.__name__: rule(graph) for rule in RULES} == {rule.__name__: [] for rule in RULES}


@pytest.mark.parametrize("rule,case", [(r, i) for r in RULES for i in range(len(BROKEN[r]))],
                         ids=lambda v: v.__name__ if callable(v) else str(v))
def test_each_rule_catches_a_violation(tmp_path, rule, case):
    graph = _tree(tmp_path, {**CLEAN, **BROKEN[rule][case]})
    assert rule(graph), f"{rule.__name__} missed {BROKEN[rule][case]}"
    others = [r.__name__ for r in RULES if r is not rule and r(graph)]
    assert others == [], f"{BROKEN[rule][case]} should break only {rule.__name__}, also broke {others}"
