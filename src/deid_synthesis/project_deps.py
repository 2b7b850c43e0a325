"""`project.yml` deps that are true: each command lists every project module and config it uses.

    python -m scripts.project_deps            (prints what each command misses; exit 1 if any)
    python -m scripts.project_deps --write    (rewrites the project files in each command's deps)


weasel re-runs a command only when one of its `deps` changed, so a module a command imports but
does not list makes `spacy project run` skip work after that module changed. The modules a command
uses are derived here from its script lines: `python -m scripts.<step>` (or `clinical_deid`), then
every project module that module imports, transitively (lazy imports inside functions too), and the
runtime modules spaCy imports through entry points when the command loads a trained pipeline. A dep
that is a folder covers the files under it.
"""
import ast
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

from weasel.util import load_project_config

ROOT = Path(__file__).resolve().parents[2]  # the project folder (src/deid_synthesis/ is two below)
PROJECT_PACKAGES = ("scripts", "clinical_deid", "deid_synthesis")
# deps that hold a trained pipeline: loading one imports the runtime through its entry points.
PIPELINE_DEP = re.compile(r"(model-best|model-last|packages/)|\$\{vars\.deid_model\}")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def module_file(module: str) -> Path:
    """The file of a project module (scripts.x → scripts/x.py; packages live under src/)."""
    base = ROOT if module.split(".")[0] == "scripts" else ROOT / "src"
    path = base.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(module: str) -> Iterator[str]:
    """The project modules MODULE imports anywhere in its code (parents' __init__ included)."""
    path = module_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule when one of that name exists.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT_PACKAGES and module_file(name).exists():
                parts = name.split(".")
                yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1)
                            if module_file(".".join(parts[:i])).exists())


def closure(modules: Set[str]) -> Set[str]:
    """MODULES and everything they import from the project, transitively."""
    seen: Set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or not module_file(module).exists():
            continue
        seen.add(module)
        todo.extend(imported_modules(module))
    return seen


def entry_point_modules() -> Set[str]:
    """The runtime modules spaCy imports by entry point (pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = project.get("entry-points", {})
    return {target.split(":")[0] for group, entries in groups.items() if group.startswith("spacy_")
            for target in entries.values()}


def used_files(command: Dict) -> Set[str]:
    """The project files (relative paths) a command's script lines use."""
    modules, files = set(), set()
    for line in command.get("script", []):
        for module in re.findall(r"python -m ((?:scripts|clinical_deid|deid_synthesis)(?:\.\w+)*)", line):
            modules.add(module)
        files.update(re.findall(r"configs/[\w.-]+\.cfg", line))
    if any(PIPELINE_DEP.search(dep) for dep in command.get("deps", [])) or "spacy.load" in str(modules):
        modules |= entry_point_modules()
    for module in closure(modules):
        files.add(module_file(module).relative_to(ROOT).as_posix())
    return files


def covered(path: str, deps: List[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def missing_deps(root: Path = ROOT) -> Dict[str, List[str]]:
    """Per command, the project files it uses that its deps do not cover."""
    found = {}
    for command in commands(root):
        deps = command.get("deps", [])
        missing = sorted(path for path in used_files(command) if not covered(path, deps))
        if missing:
            found[command["name"]] = missing
    return found


def commands(root: Path = ROOT) -> List[Dict]:
    """The commands of ROOT/project.yml, variables substituted."""
    return load_project_config(root)["commands"]


def write_deps(root: Path = ROOT) -> int:
    """Rewrite, in each command's deps of ROOT/project.yml, the entries under scripts/, src/ and
    configs/ as the files the command uses (other deps and all comments stay); returns the
    number of commands changed. The text is edited line by line, so the file keeps its layout."""
    path = root / "project.yml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    uses = {c["name"]: sorted(used_files(c)) for c in commands(root)}
    out, name, changed, i = [], None, 0, 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"  - name: \"?([\w-]+)\"?", line)
        if match:
            name = match.group(1)
        out.append(line)
        i += 1
        if line.strip() == "deps:" and name in uses:
            block = []
            while i < len(lines) and lines[i].startswith("      - "):
                block.append(lines[i])
                i += 1
            kept = [b for b in block if not re.match(r'      - "(scripts|src|configs)/', b)]
            new = kept + [f'      - "{p}"\n' for p in uses[name]]
            changed += new != block
            out.extend(new)
    path.write_text("".join(out), encoding="utf-8")
    return changed
