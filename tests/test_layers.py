"""The layers of the code (architecture.md): ``models/`` and ``features/`` are read by training and serving and
never read them back, so a model or a feature can be used (on a Spark executor, in a notebook) without the
service or the training code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = ("models", "features")
UPPER = ("training", "serving")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-local imports too), with the line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_imported_modules_sees_function_local_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef f():\n    from training.train import train\n    import serving.api as api\n")
    assert imported_modules(f) == [(1, "os"), (4, "training.train"), (5, "serving.api")]


@pytest.mark.parametrize("package", LOWER)
def test_models_and_features_do_not_import_training_or_serving(package):
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in sorted((ROOT / package).rglob("*.py"))
           for line, name in imported_modules(path) if name.split(".")[0] in UPPER]
    assert not bad, "\n".join(bad)
