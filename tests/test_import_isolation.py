"""The server loads catclient.wire without the client library (cold starts must not pay for it).

Each check runs in a fresh interpreter, since this test process has long since
imported everything.  httpx is not asserted absent: blosc2 itself imports it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What only the client needs: the library, its cache (sqlite) and the CLI.
CLIENT_MODULES = {
    "catclient.cache",
    "catclient.chunks",
    "catclient.cli",
    "catclient.cli_output",
    "catclient.client",
    "catclient.credentials",
    "catclient.keys",
    "catclient.objects",
    "catclient.reads",
    "catclient.session",
    "catclient.stats",
    "catclient.transfers",
    "catclient.writes",
    "sqlite3",
}


def _modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after running *code*."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_client_modules_exist():
    # A renamed module would make the checks below pass vacuously
    for name in CLIENT_MODULES - {"sqlite3"}:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


def test_api_handler_does_not_load_the_client():
    loaded = _modules_after("import functions.handlers.api")
    assert not loaded & CLIENT_MODULES


def test_no_server_module_loads_the_client():
    loaded = _modules_after(
        "import importlib, pkgutil, functions\n"
        "for m in pkgutil.walk_packages(functions.__path__, 'functions.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert "catclient.wire" in loaded  # the server does use the shared part
    assert not loaded & CLIENT_MODULES, sorted(loaded & CLIENT_MODULES)


def test_wire_alone_leaves_the_client_unloaded():
    loaded = _modules_after("from catclient import wire\nwire.parse_slice('1:2')")
    assert "catclient.wire.selection" in loaded
    assert not loaded & CLIENT_MODULES, sorted(loaded & CLIENT_MODULES)


def test_public_names_load_on_first_use():
    loaded = _modules_after("import catclient")
    assert not loaded & CLIENT_MODULES
    loaded = _modules_after("from catclient import Client, Dataset, TooLarge, ChunkCache, TransferStats")
    assert {"catclient.client", "catclient.cache", "httpx"} <= loaded


def test_public_names_are_all_importable():
    import catclient

    for name in catclient.__all__:
        assert getattr(catclient, name) is not None, name
    with pytest.raises(AttributeError):
        catclient.no_such_name  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize("path", sorted((ROOT / "catclient" / "wire").glob("*.py")), ids=lambda p: p.name)
def test_wire_imports_only_blosc2_numpy_and_the_standard_library(path):
    allowed = {"blosc2", "numpy", "catclient", "__future__"} | set(sys.stdlib_module_names)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
            if name.startswith("catclient"):
                assert name.startswith("catclient.wire"), f"{path.name} imports {name}"
