"""The architecture stays visible: packaging covers every package, each stage folder documents
itself, and serving never imports the library."""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
MAPPED = {"tfrec_fashion": "tfrec_fashion", "tfrec_fashion_export": "export",
          "tfrec_fashion_serving": "serving"}


def package_dirs():
    for package, folder in MAPPED.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT / folder)
            yield ".".join([package, *relative.parts]), init


def test_setup_cfg_lists_every_package_and_mapping():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    found = {name for name, _ in package_dirs()}
    assert found - listed == set(), "add these packages to setup.cfg [options] packages"
    mapping = dict(line.split(" = ") for line in
                   setup["options"]["package_dir"].strip().splitlines())
    assert mapping == MAPPED


def test_every_package_folder_has_a_docstring():
    for name, init in package_dirs():
        assert ast.get_docstring(ast.parse(init.read_text())), f"{name} has no docstring"


def test_serving_never_imports_the_library():
    for path in (ROOT / "serving").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("tfrec_fashion", "export")) or \
                    name.startswith("tfrec_fashion_serving"), f"{path} imports {name}"
    code = "import sys, tfrec_fashion_serving; print(any(m == 'tfrec_fashion' or m.startswith('tfrec_fashion.') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_library_does_not_import_export_or_serving():
    for path in (ROOT / "tfrec_fashion").rglob("*.py"):
        if path.name == "cli.py" or path.name == "demo.py":
            continue  # the composition root wires every stage
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                for name in names:
                    assert not name.startswith(("tfrec_fashion_export", "tfrec_fashion_serving")), \
                        f"{path} imports {name}: the library must not depend on later stages"


# The library's stages, lowest first: a module may import its own stage and those below it.
STAGE_RANKS = {"errors": 0, "serialization": 0, "config": 1, "losses": 1, "metrics": 1,
               "data": 2, "tasks": 2, "layers": 3, "models": 4, "evaluation": 4, "training": 5,
               "visualisation": 5, "tables": 6, "demo": 7, "cli": 8}


def _project_imports(path: Path) -> set[str]:
    """Dotted tfrec_fashion modules ``path`` imports (anywhere in it: lazy imports count;
    imports for type checkers only, under ``if TYPE_CHECKING:``, do not)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tfrec_fashion.")}


def _library_modules() -> dict[str, Path]:
    modules = {}
    for path in (ROOT / "tfrec_fashion").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_library_stages_import_only_downwards():
    for name, path in _library_modules().items():
        parts = name.split(".")
        if len(parts) < 2:
            continue  # tfrec_fashion/__init__.py
        stage = parts[1]
        assert stage in STAGE_RANKS, f"{name}: place the new stage {stage!r} in STAGE_RANKS"
        for imported in _project_imports(path):
            target = imported.split(".")[1]
            assert STAGE_RANKS[target] <= STAGE_RANKS[stage], (
                f"{name} imports {imported}: {stage} may not import the later stage {target}")


def test_library_modules_have_no_import_cycles():
    modules = _library_modules()
    graph = {name: {target for imported in _project_imports(path)
                    for target in (imported, imported.rsplit(".", 1)[0]) if target in modules
                    and target != name and not name.startswith(target + ".")}
             for name, path in modules.items()}
    # A package's __init__ importing its own modules is the usual re-export, not a cycle.
    graph = {name: {t for t in targets if not t.startswith(name + ".")}
             for name, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = trail[trail.index(target):] + [target] if target in trail else [name, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
