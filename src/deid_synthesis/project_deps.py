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


def entry_point_modules(prefixes=("spacy_",)) -> Set[str]:
    """The modules imported by entry point (pyproject.toml) in the groups starting with PREFIXES:
    spaCy's (spacy_*), or spacy-llm's, which it names through thinc (thinc_llm_*)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = project.get("entry-points", {})
    return {target.split(":")[0] for group, entries in groups.items() if group.startswith(tuple(prefixes))
            for target in entries.values()}


def module_data(module: str) -> Set[str]:
    """What a module reads from the project besides code: the JSON data files beside it (package
    data such as lang/<lang>.json) and the configs its source names ("ner_cpu.cfg")."""
    path = module_file(module)
    found = {p.relative_to(ROOT).as_posix() for p in path.parent.glob("*.json")}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # string literals, not docs
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"(configs/)?[\w-]+\.cfg", node.value):
            name = node.value.removeprefix("configs/")
            if (ROOT / "configs" / name).is_file():
                found.add(f"configs/{name}")
    return found


def used_files(command: Dict) -> Set[str]:
    """The project files (relative paths) a command's script lines use."""
    modules, files = set(), set()
    for line in command.get("script", []):
        for module in re.findall(r"python -m ((?:scripts|clinical_deid|deid_synthesis)(?:\.\w+)*)", line):
            modules.add(module)
        files.update(re.findall(r"configs/[\w.-]+\.cfg", line))
    # A trained pipeline or a config names registered pieces: spaCy imports them by entry point.
    if files or any(PIPELINE_DEP.search(dep) for dep in command.get("deps", [])):
        modules |= entry_point_modules()
    if any("@llm_" in (ROOT / f).read_text(encoding="utf-8") for f in files):
        modules |= entry_point_modules(("thinc_llm_",))
    for module in closure(modules):
        files.add(module_file(module).relative_to(ROOT).as_posix())
        files |= module_data(module)
    return files


def folded(paths: Set[str], root: Path = ROOT) -> List[str]:
    """PATHS with each folder under src/ whose every module and data file is in PATHS written as
    the folder (outermost first), so that deps stay short and still name every file."""
    result = set(paths)
    folders = sorted({p.parent for p in (root / "src").rglob("*.py")}, key=lambda f: len(f.parts), reverse=True)
    for folder in folders:
        files = {f.relative_to(root).as_posix() for f in folder.rglob("*") if f.suffix in (".py", ".json")
                 and "__pycache__" not in f.parts}
        inner = {p for p in result if p.startswith(folder.relative_to(root).as_posix() + "/")}
        if files and all(covered(f, sorted(inner)) for f in files):
            result = (result - inner) | {folder.relative_to(root).as_posix()}
    return sorted(result)


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
    resolved = {c["name"]: c for c in commands(root)}
    out, name, changed, i = [], None, 0, 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"  - name: \"?([\w-]+)\"?", line)
        if match:
            name = match.group(1)
        out.append(line)
        i += 1
        if line.strip() == "deps:" and name in resolved:
            block = []
            while i < len(lines) and lines[i].startswith("      - "):
                block.append(lines[i])
                i += 1
            # Entries with a variable ("configs/${vars.config}.cfg") and outside the project's
            # code stay; the block's lines are the command's deps in order, so each kept line's
            # resolved value says which used files it already covers.
            keep = [("${" in b or not re.match(r'      - "(scripts|src|configs)/', b)) for b in block]
            kept = [b for b, k in zip(block, keep) if k]
            kept_values = [d for d, k in zip(resolved[name]["deps"], keep) if k]
            uses = {p for p in used_files(resolved[name]) if not covered(p, kept_values)}
            new = kept + [f'      - "{p}"\n' for p in folded(uses, root)]
            changed += new != block
            out.extend(new)
    path.write_text("".join(out), encoding="utf-8")
    return changed
