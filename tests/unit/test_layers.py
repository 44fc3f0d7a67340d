"""The package's shape, checked so nobody has to remember it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.procs import ROOT, env

SOURCES = [ROOT / "redpool", ROOT / "producer", ROOT / "workers", ROOT / "sink"]
"""The package and the roles' folders (rglob does not follow the symlinks that join them)."""


def modules() -> list[Path]:
    """Every module of the installed package, each once."""
    found = {p.resolve() for source in SOURCES for p in source.rglob("*.py")}
    return sorted(p for p in found if "__pycache__" not in p.parts)


def test_layers_only_point_down() -> None:
    """import-linter's contracts in pyproject.toml: the face -> the roles -> the contract, the
    roles independent of each other, and only the contract importing redis or the scripts."""
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_only_the_contract_builds_script_arguments() -> None:
    """No KEYS/ARGV list is built outside the two modules of the contract that talk to
    Redis (`redpool.pipeline`, and `redpool.holding` under it): every script call passes
    ``keys=``."""
    callers = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and "keys" in {k.arg for k in node.keywords}:
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    talking = ("redpool/shard.py:", "redpool/holding.py:")
    assert callers and all(c.startswith(talking) for c in callers), callers
    assert len(modules()) > 30  # the roles' modules are among those read


def test_only_keys_spells_the_prefix() -> None:
    """The wire's key names are spelled in one module (the README's table mirrors it)."""
    spelled = [
        str(path.relative_to(ROOT))
        for path in modules()
        if "redpool:{" in path.read_text() and path.name != "keys.py"
    ]
    assert spelled == []


def test_lua_spells_the_fields_python_spells() -> None:
    """The scripts write the stats fields and the closed marker that `redpool.keys` names:
    a field renamed on one side only would be a counter nobody reads."""
    from redpool.keys import CLOSED, Stat

    lua = " ".join(p.read_text() for p in (ROOT / "redpool" / "scripts").glob("*.lua"))
    written = set(re.findall(r"'HINCRBY', KEYS\[\d\], '(\w+)'", lua))
    assert written and written <= {str(s) for s in Stat}, written
    assert f"== '{CLOSED.decode()}'" in lua
