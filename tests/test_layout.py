"""The package's layout: robench's imports, module-level and inside functions, form no cycle."""

from __future__ import annotations


def test_no_import_cycle_counting_function_level_imports():
    """Every robench module's imports, module-level and inside functions, form no cycle: data flows one way.
    (A submodule's implicit import of its parent package is not counted; an explicit one is.)"""
    import ast
    from pathlib import Path

    import robench

    root = Path(robench.__file__).parent
    modules = {".".join(("robench", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robench"):
                targets = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                graph[name] |= set(targets or ([node.module] if node.module in modules else []))
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
        graph[name].discard(name)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # depth-first search; a grey node met again closes a cycle
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
