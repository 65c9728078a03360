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
