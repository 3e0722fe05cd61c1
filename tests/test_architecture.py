"""The core (layout, hf, rules, profile, export, measure, search) imports nothing from the commands, the app
or the CLI, and parses no command line: the import graph points one way, downwards. The exported templates
are standalone scripts (their own argparse) and are left out."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "designer"
CORE = ("layout.py", "hf.py", "rules", "profile", "export", "measure", "search")
FORBIDDEN = ("designer.commands", "designer.app", "designer.cli", "designer.cliutil", "argparse")


def core_modules() -> list[Path]:
    out = []
    for entry in CORE:
        path = PACKAGE / entry
        files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
        out += [f for f in files if "templates" not in f.relative_to(PACKAGE).parts]
    return out


def imported_names(tree: ast.AST) -> list[str]:
    """Every module an import statement anywhere in the file names (function-level imports included)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_core_has_modules_to_check():
    names = {p.relative_to(PACKAGE).as_posix() for p in core_modules()}
    assert {"layout.py", "hf.py", "rules/engine.py", "profile/analytic.py", "export/model_export.py",
            "measure/proxy.py"} <= names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_core_module_imports_no_command_app_or_cli_code(path):
    bad = [n for n in imported_names(ast.parse(path.read_text(), filename=str(path))) if forbidden(n)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: the core must not reach up into commands/app/cli"


def test_the_checker_catches_an_upward_import():
    tree = ast.parse("def f():\n    from designer import cli\n    from designer.commands.profile import x\n"
                     "import argparse\n")
    assert {n for n in imported_names(tree) if forbidden(n)} >= {"designer.cli", "designer.commands.profile",
                                                                 "argparse"}


def test_the_cli_dispatches_to_modules_of_designer_commands_with_plain_imports():
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    modules = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    commands = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "designer.commands"]
    assert all(m in ("__future__", "types", "typing", "designer", "designer.cliutil", "designer.commands")
               for m in modules), modules
    from designer.cli import COMMANDS
    assert len(commands) >= len(COMMANDS)
    for name, (load, _) in COMMANDS.items():
        if name != "app":            # commands.app starts Streamlit only when run
            module = load()
            assert module.__name__.startswith("designer.commands."), (name, module.__name__)
            assert callable(module.build_parser) and callable(module.run)


def test_layout_and_hf_do_not_import_each_other():
    """hf.py reads and writes Layouts; layout.py learns of the config.json reader through CONFIG_READERS."""
    tree = ast.parse((PACKAGE / "layout.py").read_text())
    assert "designer.hf" not in {node.module + "." + a.name if node.module == "designer" else node.module
                                 for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
    from designer.hf import read_config
    from designer.layout import CONFIG_READERS
    assert read_config in CONFIG_READERS
