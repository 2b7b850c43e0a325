"""`project.yml` deps that are true (deid_synthesis.project_deps derives what each command uses)."""
import shutil

from deid_synthesis.project_deps import (ROOT, commands, entry_point_modules, missing_deps, module_file,
                                         used_files, write_deps)


def test_deps_list_every_module_and_config_the_command_uses():
    assert missing_deps() == {}, "run python -m scripts.project_deps --write"


def test_every_listed_project_file_exists():
    for command in commands():
        for dep in command.get("deps", []):
            if dep.startswith(("scripts/", "src/", "configs/")):
                assert (ROOT / dep).exists(), f"{command['name']}: dep {dep} does not exist"


def test_the_derivation_finds_lazy_and_entry_point_imports():
    # privacy imports generation code inside a function, and a command that loads a pipeline
    # needs the components spaCy imports by entry point.
    found = used_files({"script": ["python -m scripts.evaluate MODEL DATA"], "deps": ["training/x/model-best"]})
    assert "scripts/evaluate.py" in found
    assert {module_file(m).relative_to(ROOT).as_posix() for m in entry_point_modules()} <= found
    assert any(path.startswith("src/clinical_deid/") for path in found)


def test_write_deps_adds_what_is_missing_and_keeps_the_rest(tmp_path):
    shutil.copy(ROOT / "project.yml", tmp_path / "project.yml")
    text = (tmp_path / "project.yml").read_text(encoding="utf-8")
    # Drop one module dep of the convert command and add a stale one.
    broken = text.replace('      - "${vars.data_dir}"\n', '      - "${vars.data_dir}"\n      - "scripts/gone.py"\n', 1)
    (tmp_path / "project.yml").write_text(broken, encoding="utf-8")
    write_deps(tmp_path)
    fixed = (tmp_path / "project.yml").read_text(encoding="utf-8")
    assert "scripts/gone.py" not in fixed and "# Variables" in fixed
    assert missing_deps(tmp_path) == {}
