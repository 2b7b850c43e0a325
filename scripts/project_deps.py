"""Check or rewrite project.yml's deps from what each command imports (deid_synthesis.project_deps)."""
import typer
from wasabi import msg

from deid_synthesis.project_deps import missing_deps, write_deps


def main(write: bool = typer.Option(False, "--write", help="Rewrite the project-file deps of every command")):
    """Print the project files each command uses but does not list in deps (exit 1 if any)."""
    if write:
        msg.good(f"Rewrote the deps of {write_deps()} commands")
    missing = missing_deps()
    for name, paths in missing.items():
        msg.fail(f"{name}: missing {', '.join(paths)}")
    if missing:
        raise typer.Exit(1)
    msg.good("Every command lists the project files it uses")


if __name__ == "__main__":
    typer.run(main)
