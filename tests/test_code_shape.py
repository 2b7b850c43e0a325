"""The shape the code keeps: small modules, short functions, and the runtime free of torch.

A module over about 400 lines or a function over about 60 does more than one job; one that must
be longer says why in a comment starting `# Long:` just above or inside its first lines.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 420  # "about 400"
MAX_FUNCTION_LINES = 60
SOURCES = sorted(p for folder in ("src", "scripts", "tests") for p in (ROOT / folder).rglob("*.py"))


def long_functions(path: Path):
    """(name, first line, length) of each function over MAX_FUNCTION_LINES without a `# Long:` reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - first + 1
            context = lines[max(0, first - 4): node.lineno + 5]
            if length > MAX_FUNCTION_LINES and not any("# Long:" in line for line in context):
                yield node.name, first, length


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_is_small(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {n} lines; split it by responsibility"


@pytest.mark.parametrize("path", [p for p in SOURCES if "tests" not in p.parts],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_functions_are_short_or_say_why(path):
    found = list(long_functions(path))
    assert not found, f"{path.relative_to(ROOT)}: {found} (split, or add a '# Long: why' comment)"


def test_the_runtime_imports_no_torch():
    # Every runtime module imported with torch, transformers, peft and spacy-llm hidden (thinc
    # imports torch when it is installed, so hiding it is the check). Running a pipeline without
    # torch installed at all: tests/test_package.py's fresh virtual environment.
    runtime = sorted(".".join(p.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "src" / "clinical_deid").rglob("*.py") if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            "for name in ('torch', 'transformers', 'peft', 'spacy_llm'): sys.modules[name] = None\n"
            f"for module in {runtime!r}: importlib.import_module(module)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
