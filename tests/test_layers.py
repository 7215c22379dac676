"""The packages depend on each other one way, and the pure engines load without Flask.

``invoices`` may use ``subsidies`` and ``orders``; ``subsidies`` may use
``orders``; all may use ``buyersclub``; never back up. The composition roots
(the factory, the command line and the demo data) are the only modules that
reach into every domain.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["buyersclub", "orders", "subsidies", "invoices"]
# The factory and the command line wire the domains in; the demo data seeds all of them.
COMPOSITION_ROOTS = {"buyersclub/factory.py", "buyersclub/cli.py", "buyersclub/demo.py"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_a_later_one(package):
    later = set(LAYERS[LAYERS.index(package) + 1:])
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in COMPOSITION_ROOTS:
            continue
        found = imported_packages(path) & later
        if found:
            wrong[relative] = sorted(found)
    assert wrong == {}, f"imports against the direction of the layers: {wrong}"


@pytest.mark.parametrize("module", ["buyersclub.money", "orders.engine", "subsidies.engine"])
def test_pure_modules_load_without_flask_or_sqlalchemy(module):
    script = (
        f"import sys, {module}\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'flask', 'werkzeug', 'sqlalchemy', 'flask_sqlalchemy'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    assert result.stdout.strip() == "[]"
