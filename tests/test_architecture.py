"""The layout shows the layers: imports inside rnnlab flow downward only, and there is no import cycle.

The layers are read from ARCHITECTURE.md (the fenced block after "## Layers"), so the document and the code
cannot drift apart: a module that is in no layer, an import of a higher layer, or any cycle fails here.
"""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "rnnlab")


def _layers() -> dict[str, int]:
    """``{module prefix: layer}`` from ARCHITECTURE.md's layer table ('L3  rnnlab/models.py ...')."""
    text = open(os.path.join(ROOT, "ARCHITECTURE.md")).read()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    table, layer = {}, None
    for line in block.splitlines():
        m = re.match(r"\s*L(\d+)\s+(.*)", line)
        if m:
            layer, line = int(m.group(1)), m.group(2)  # a line without "Ln" continues the layer above
        for path in re.findall(r"rnnlab/[\w/]+(?:\.py)?", line):
            table[path.removesuffix(".py").rstrip("/").replace("/", ".")] = layer
    return table


def _modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return out


def _imports(path: str, module: str, known: set[str]) -> set[str]:
    """Every rnnlab module imported anywhere in the file (function-level imports included)."""
    tree = ast.parse(open(path).read())
    pkg = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import submodule` imports the submodule; `from pkg import name` imports pkg itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != module and n != "rnnlab":
                found.add(n)
    return found


def _layer(module: str, table: dict[str, int]) -> int | None:
    while module:
        if module in table:
            return table[module]
        module = module.rpartition(".")[0]
    return None


def test_every_module_has_a_layer_and_imports_flow_down():
    table, modules = _layers(), _modules()
    problems = []
    for mod, path in sorted(modules.items()):
        if mod in ("rnnlab", "rnnlab.__main__"):
            continue
        layer = _layer(mod, table)
        if layer is None:
            problems.append(f"{mod} is in no layer of ARCHITECTURE.md")
            continue
        for dep in sorted(_imports(path, mod, set(modules))):
            dep_layer = _layer(dep, table)
            if dep_layer is not None and dep_layer > layer:
                problems.append(f"{mod} (L{layer}) imports {dep} (L{dep_layer}): an upward import")
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _imports(p, m, set(modules)) for m, p in modules.items()}
    # Tarjan's strongly connected components; any component with 2+ modules is a cycle.
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_over_400_lines():
    exempt = re.compile(r"rnnlab/tasks/formats/")  # parsers of external formats, one per file
    long = []
    for mod, path in _modules().items():
        n = sum(1 for _ in open(path))
        if n > 400 and not exempt.search(path.replace(os.sep, "/")):
            long.append(f"{mod}: {n} lines")
    assert not long, "modules over 400 lines: " + ", ".join(long)
