"""The command layer: one registry that ``imgcls --help`` lists, and floors that import only downward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imgcls.commands import COMMANDS, main
from tests.conftest import REPO

PACKAGE = REPO / "imgcls"
# the floors of imgcls, top to bottom (DESIGN.md): a module imports only its own floor's modules and
# those of the floors below it
FLOORS = (
    ("imgcls.commands",),
    ("imgcls.studies", "imgcls.fewshot", "imgcls.analysis", "imgcls.inference"),
    ("imgcls.callbacks", "imgcls.models", "imgcls.data", "imgcls.plots"),
    (
        "imgcls.runs",
        "imgcls.contract",
        "imgcls.storage",
        "imgcls.loggers",
        "imgcls.stats",
        "imgcls.optuna_storage",
        "imgcls.precision",
        "imgcls.checkpoint_io",
        "imgcls.quiet",
        "imgcls.errors",
        "imgcls.yamlfiles",
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, those inside functions too, relative ones resolved."""
    package = (
        module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    )
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return [(module, names) for module, names in found if module.split(".")[0] == "imgcls"]


def floor_of(module: str) -> int | None:
    for number, floor in enumerate(FLOORS):
        if any(module == name or module.startswith(name + ".") for name in floor):
            return number
    return None


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_floor() -> None:
    assert [m for m in MODULES if m != "imgcls" and m != "imgcls.__main__" and floor_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_import_only_their_floor_and_below(module: str) -> None:
    floor = floor_of(module)
    floors = [(target, floor_of(target)) for target, _ in imports_of(MODULES[module])]
    upward = [
        target for target, number in floors if number is not None and floor is not None and number < floor
    ]
    assert upward == [], f"{module} imports a floor above its own"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module: str) -> None:
    private = [
        f"{target}.{name}"
        for target, names in imports_of(MODULES[module])
        for name in names
        if name.startswith("_") and target != module
    ]
    assert private == []


def test_the_package_has_no_import_cycle() -> None:
    edges = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, names in imports_of(path):
            for candidate in [f"{target}.{name}" for name in names] + [target]:
                while candidate and candidate not in MODULES:
                    candidate = candidate.rpartition(".")[0]
                # a package importing its own submodules, or a module its package, is no design cycle
                related = candidate.startswith(module + ".") or module.startswith(candidate + ".")
                if candidate and candidate != module and not related:
                    edges[module].add(candidate)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting, module])
        visiting.append(module)
        for target in sorted(edges[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(MODULES):
        visit(module)


def test_every_command_module_is_registered_once() -> None:
    modules = [p for p in (PACKAGE / "commands").glob("*.py") if "\nCOMMANDS = " in p.read_text()]
    names = [
        command.name
        for path in modules
        for command in __import__(module_name(path), fromlist=["COMMANDS"]).COMMANDS
    ]
    assert sorted(names) == sorted(COMMANDS) and len(names) == len(set(names))
    assert {"fit", "validate", "test", "predict", "summary", "compare", "sweep", "fewshot"} <= set(COMMANDS)


def test_help_lists_every_command_of_the_registry(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in COMMANDS.values():
        assert f"  {command.name} " in listed and command.summary in listed


@pytest.mark.parametrize("name", ["summary", "compare", "sweep", "fewshot", "fit"])
def test_each_command_has_its_help(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out


def test_an_unknown_command_names_the_closest(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fitt", "--config", "x.yaml"])
    assert exit_info.value.code == 2
    assert "unknown command 'fitt' (did you mean fit?)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "--config", str(REPO / "configs" / "eurosat_sample.yaml")],
        ["fewshot", "--config", str(REPO / "configs" / "fewshot" / "eurosat_5way5shot.yaml")],
        ["predict", "--ckpt_path", "model.ckpt", "image.jpg"],
        ["export", "--ckpt_path", "model.ckpt"],
    ],
    ids=lambda args: args[0],
)
def test_threads_are_checked_alike_by_every_command(args: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--threads=0"])
    assert exit_info.value.code == 2
    assert "--threads must be 1 or more, got 0" in capsys.readouterr().err
