"""The ``catclient`` command line: every command, text and ``--json`` output, exit codes.

Read commands run in-process (``catclient.cli.main``) against the local stack
over real HTTP; write commands and ``login`` against the wire fake of
``test_catclient_writes`` until our server has them (and over real HTTP they
must fail cleanly: one line, exit 3 or 4).
"""

from __future__ import annotations

import functools
import json
import stat
import subprocess
import sys
from pathlib import Path

import blosc2
import httpx
import numpy as np
import pytest

from catclient import cli
from catclient.client import Client
from infra.example_data import expected
from tests.test_catclient_writes import FAKE_URL, FakeServer

E = expected()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("CATCLIENT_URL", "CATCLIENT_TOKEN", "CATCLIENT_CACHE_DIR", "CATCLIENT_USER",
                 "CATCLIENT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CATCLIENT_CONFIG_DIR", str(tmp_path / "config"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    # The local stack runs in this process and logs its change events as JSON lines on
    # stdout too ({"level": ...}): the command's answer is the one line that is not a log
    answers = [line for line in out.splitlines() if line.strip() and not line.startswith('{"level"')]
    assert len(answers) == 1, out
    return json.loads(answers[0])


def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("catclient: error: "), err


# --------------------------------------------------------------------------- help


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and out.startswith("usage: catclient") and "exit codes:" in out
    for name, *_ in cli.COMMANDS:
        assert f"    {name} " in out
        code, out_cmd, _ = run(capsys, name, "--help")
        assert code == 0 and f"usage: catclient {name}" in out_cmd
        assert "examples:" in out_cmd and "--json" in out_cmd and "exit codes:" in out_cmd
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("catclient ")


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "catclient", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "usage: catclient" in proc.stdout and "publish" in proc.stdout


def test_usage_errors(capsys):
    code, _, err = run(capsys)
    assert code == 1
    for argv in (["bogus"], ["list"], ["roots", "--bogus"], ["show", "x", "--timeout", "soon"]):
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert_one_line_error(err)


# --------------------------------------------------------------------------- read commands


def test_roots(capsys, api_url):
    code, out, _ = run(capsys, "--url", api_url, "roots")
    assert code == 0 and "example" in out.split()
    assert run_json(capsys, "roots", "--url", api_url)["example"]["name"] == "example"


def test_url_from_environment(capsys, api_url, monkeypatch):
    monkeypatch.setenv("CATCLIENT_URL", api_url)
    code, out, _ = run(capsys, "list", "example/dir1")
    assert code == 0 and out.split() == ["ds-2d.b2nd", "ds-3d.b2nd"]


def test_list(capsys, api_url):
    code, out, _ = run(capsys, "--url", api_url, "list", "example")
    assert code == 0 and out.split() == sorted(E)
    assert run_json(capsys, "--url", api_url, "list", "example/dir2") == ["ds-4d.b2nd"]


def test_url(capsys, api_url):
    code, out, _ = run(capsys, "--url", api_url, "url", "example/dir1/ds-2d.b2nd")
    assert code == 0 and out.strip() == f"{api_url}/api/download/example/dir1/ds-2d.b2nd"
    got = run_json(capsys, "--url", api_url, "url", "@public/x.txt")
    assert got == f"{api_url}/api/download/%40public/x.txt"


def test_info(capsys, api_url):
    code, out, _ = run(capsys, "--url", api_url, "info", "example/dir1/ds-2d.b2nd")
    assert code == 0
    assert "shape   : (10, 20)" in out and "dtype   : uint16" in out and "chunks  : (5, 5)" in out
    assert "cparams : codec ZSTD" in out and "ratio   :" in out
    meta = run_json(capsys, "--url", api_url, "info", "example/dir1/ds-2d.b2nd")
    with Client(api_url) as c:
        assert meta == c.get_info("example/dir1/ds-2d.b2nd")
    code, out, _ = run(capsys, "--url", api_url, "info", "example/dir1")
    assert code == 0 and "kind    : directory" in out and "nfiles  : 2" in out
    code, out, _ = run(capsys, "--url", api_url, "info", "example/README.md")
    assert code == 0 and "kind    : file" in out and "nbytes  :" in out
    code, out, _ = run(capsys, "--url", api_url, "info", "example/ds-sc-attr.b2nd")
    assert code == 0 and '"b": "foo"' in out


def test_show(capsys, api_url):
    truth = E["dir2/ds-4d.b2nd"]
    code, out, _ = run(capsys, "--url", api_url, "show", "example/dir2/ds-4d.b2nd[1,2,3]")
    assert code == 0 and out.strip() == str(truth[1, 2, 3])
    got = run_json(capsys, "--url", api_url, "show", "example/dir2/ds-4d.b2nd[1,2,3]")
    assert got == [[v.real, v.imag] for v in truth[1, 2, 3]]
    got = run_json(capsys, "--url", api_url, "show", "example/dir1/ds-2d.b2nd", "--slice", "2:4, 3:6")
    assert got == E["dir1/ds-2d.b2nd"][2:4, 3:6].tolist()
    code, out, _ = run(capsys, "--url", api_url, "show", "example/README.md[:40]")
    assert code == 0 and out == E["README.md"][:40].decode() + "\n"
    assert run_json(capsys, "--url", api_url, "show", "example/ds-hello.b2frame[0:12]") == "Hello world!"
    assert run_json(capsys, "--url", api_url, "show", "example/ds-sc-attr.b2nd") == "foobar"
    assert run_json(capsys, "--url", api_url, "show", "example/ds-1d-b.b2nd[0:2]") == ["foobar", "foobar"]
    fields = E["ds-1d-fields.b2nd"]
    got = run_json(capsys, "--url", api_url, "show", "example/ds-1d-fields.b2nd[0:5]", "--field", "a")
    assert got == fields["a"][:5].tolist()
    got = run_json(capsys, "--url", api_url, "show", "example/ds-1d-fields.b2nd", "--filter",
                   "(a > 990) & d")
    assert [row[0] for row in got] == [993, 996, 999]
    code, _, err = run(capsys, "--url", api_url, "show", "example/ds-1d.b2nd[1]", "--slice", "2")
    assert code == 1 and "not both" in err


def test_show_binary_and_large(capsys, api_url, stack):
    from functions.engine.content import load_plain

    data = bytes(range(256)) * 8
    stack.regions[0].services.publisher.publish("clitest", "blob.bin", load_plain(data))
    with Client(api_url) as c:
        from tests.test_catclient import wait_for

        wait_for(c, "clitest/blob.bin")
    code, out, _ = run(capsys, "--url", api_url, "show", "clitest/blob.bin")
    assert code == 0 and "2.0 KB of binary data" in out
    got = run_json(capsys, "--url", api_url, "show", "clitest/blob.bin[250:260]")
    assert got == {"base64": "+vv8/f7/AAECAw=="}


def test_download(capsys, api_url, tmp_path, monkeypatch):
    code, out, _ = run(capsys, "--url", api_url, "download", "example/dir1/ds-2d.b2nd", str(tmp_path))
    assert code == 0 and out.startswith("saved example/dir1/ds-2d.b2nd to ") and "B)" in out
    assert np.array_equal(blosc2.open(str(tmp_path / "ds-2d.b2nd"))[:], E["dir1/ds-2d.b2nd"])
    got = run_json(capsys, "--url", api_url, "--no-plans", "download", "example/README.md",
                   str(tmp_path / "r.md"))
    assert got == {"path": "example/README.md", "local": str(tmp_path / "r.md"), "size": len(E["README.md"])}
    assert (tmp_path / "r.md").read_bytes() == E["README.md"]
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "--url", api_url, "download", "example/ds-hello.b2frame")
    assert code == 0 and blosc2.open("ds-hello.b2frame")[:] == E["ds-hello.b2frame"]


def test_large_download_through_plan_and_cache(capsys, api_url, stack, tmp_path, monkeypatch):
    from catclient.cache import ChunkCache
    from tests.test_catclient import publish, wait_for

    data = np.random.default_rng(1).integers(0, 256, size=1_600_000, dtype=np.uint8)
    publish(stack, "clitest", "noise.b2nd", blosc2.asarray(data, chunks=(400_000,)))
    with Client(api_url) as c:
        wait_for(c, "clitest/noise.b2nd")
    cache = tmp_path / "cache"
    monkeypatch.setenv("CATCLIENT_CACHE_DIR", str(cache))
    for name in ("a.b2nd", "b.b2nd"):
        code, _, err = run(capsys, "--url", api_url, "download", "clitest/noise.b2nd", str(tmp_path / name))
        assert code == 0, err
        assert np.array_equal(blosc2.open(str(tmp_path / name))[:], data)
    # over 1 MB compressed: read through a plan, chunks kept in the cache for next time
    assert len(ChunkCache(cache)) == 4


def test_subscribe_unsubscribe(capsys, stack):
    url = stack.regions[1].url
    code, _, err = run(capsys, "--url", url, "subscribe", "example")
    assert code == 3 and "log" in err  # anonymous: unauthorized
    login = httpx.post(
        f"{url}/auth/jwt/login",
        data={"username": stack.resources["demo_user"], "password": stack.resources["demo_password"]},
    )
    token = login.cookies["c2subauth"]
    code, out, _ = run(capsys, "--url", url, "--token", token, "subscribe", "example")
    assert code == 0 and out.strip() == "subscribed to example"
    code, out, _ = run(capsys, "--url", url, "roots")
    assert "example  (subscribed)" in out
    got = run_json(capsys, "--url", url, "--token", token, "unsubscribe", "example")
    assert got == {"name": "example", "subscribed": False}


# --------------------------------------------------------------------------- failures


def test_exit_codes(capsys, api_url, tmp_path):
    code, _, err = run(capsys, "--url", api_url, "info", "example/nope.b2nd")
    assert code == 2 and "not found" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, "--url", api_url, "show", "example/ds-1d.b2nd[a:b]")
    assert code == 1 and "not a slice" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, "--url", api_url, "show", "example/ds-1d.b2nd[5000]")
    assert code == 1 and "out of range" in err
    code, _, err = run(capsys, "--url", "http://127.0.0.1:1", "--timeout", "2", "roots")
    assert code == 4 and "cannot reach" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, "--url", api_url, "upload", str(tmp_path / "missing.b2nd"), "@personal/x.b2nd")
    assert code == 2 and "no such local file" in err
    code, _, err = run(capsys, "--url", api_url, "publish", str(tmp_path / "missing"), "@personal/x")
    assert code == 2 and "no such local directory" in err


def test_writes_against_the_stack_fail_cleanly(capsys, api_url, tmp_path):
    """Anonymous writes: 401 (exit 3), or exit 4 while the server has no write endpoints."""
    local = tmp_path / "a.txt"
    local.write_text("hello")
    for argv in (["upload", str(local), "@personal/a.txt"], ["publish", str(tmp_path), "@personal/t"],
                 ["rm", "@personal/a.txt"], ["mv", "@personal/a.txt", "@personal/b.txt"],
                 ["cp", "example/ds-1d.b2nd", "@personal/ds-1d.b2nd"]):
        code, out, err = run(capsys, "--url", api_url, *argv)
        assert code in (cli.EXIT_UNAUTHORIZED, cli.EXIT_SERVER), (argv, err)
        assert_one_line_error(err)
        assert out == ""


def test_login_and_writes_on_the_stack(capsys, stack, api_url, tmp_path):
    from tests.test_catclient import writable_credentials

    user, password = writable_credentials(stack, api_url)
    code, out, err = run(capsys, "--url", api_url, "login", user, "--password", password)
    assert code == 0, err
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "notes.txt").write_text("notes")
    blosc2.asarray(np.arange(10), urlpath=str(tree / "d" / "a.b2nd"), mode="w")
    got = run_json(capsys, "--url", api_url, "publish", str(tree), "@personal/cli-tree")
    assert got["files"] == 2
    assert run_json(capsys, "--url", api_url, "list", "@personal/cli-tree") == ["d/a.b2nd", "notes.txt"]
    assert run_json(capsys, "--url", api_url, "show", "@personal/cli-tree/d/a.b2nd[2:5]") == [2, 3, 4]
    got = run_json(capsys, "--url", api_url, "cp", "@personal/cli-tree/d/a.b2nd", "@personal/cli-tree/b.b2nd")
    assert got["path"] == "@personal/cli-tree/b.b2nd"
    code, _, err = run(capsys, "--url", api_url, "mv", "@personal/cli-tree/b.b2nd", "@personal/cli-tree/c.b2nd")
    assert code == 0, err
    local = tmp_path / "up.txt"
    local.write_text("uploaded")
    got = run_json(capsys, "--url", api_url, "upload", str(local), "@personal/cli-tree/")
    assert got["path"] == "@personal/cli-tree/up.txt"
    assert run_json(capsys, "--url", api_url, "show", "@personal/cli-tree/up.txt") == "uploaded"
    assert run_json(capsys, "--url", api_url, "rm", "@personal/cli-tree") == {"removed": "@personal/cli-tree"}
    code, _, err = run(capsys, "--url", api_url, "info", "@personal/cli-tree/c.b2nd")
    assert code == 2
    run(capsys, "--url", api_url, "logout")
    code, _, err = run(capsys, "--url", api_url, "list", "@personal")
    assert code in (2, 3)  # @personal is not there for anonymous users
    assert_one_line_error(err)


# --------------------------------------------------------------------------- writes and login (wire fake)


@pytest.fixture
def fake(monkeypatch):
    server = FakeServer()
    monkeypatch.setattr(cli, "Client", functools.partial(Client, transport=server.transport()))
    return server


def test_login_logout(capsys, fake):
    code, out, _ = run(capsys, "--url", FAKE_URL, "login", fake.USER, "--password", fake.PASSWORD)
    assert code == 0 and f"logged in to {FAKE_URL} as {fake.USER}" in out
    path = cli.credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["servers"][FAKE_URL]["token"] == fake.TOKEN
    # later commands use the saved token
    assert "@personal" in run_json(capsys, "--url", FAKE_URL, "roots")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.TOKEN}"
    assert run_json(capsys, "--url", FAKE_URL, "logout") == {"url": FAKE_URL, "removed": True}
    assert "@personal" not in run_json(capsys, "--url", FAKE_URL, "roots")
    code, out, _ = run(capsys, "--url", FAKE_URL, "logout")
    assert code == 0 and "no token" in out


def test_login_failures(capsys, fake, monkeypatch):
    code, _, err = run(capsys, "--url", FAKE_URL, "login", fake.USER, "--password", "wrong")
    assert code == 3 and "LOGIN_BAD_CREDENTIALS" in err
    assert_one_line_error(err)
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))  # noqa: SIM115 - closed by pytest's teardown
    code, _, err = run(capsys, "--url", FAKE_URL, "login", fake.USER)
    assert code == 1 and "--password" in err
    monkeypatch.setenv("CATCLIENT_USER", fake.USER)
    monkeypatch.setenv("CATCLIENT_PASSWORD", fake.PASSWORD)
    assert run_json(capsys, "--url", FAKE_URL, "login")["username"] == fake.USER


def test_write_commands(capsys, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("CATCLIENT_TOKEN", fake.TOKEN)
    local = tmp_path / "arr.b2nd"
    blosc2.asarray(np.arange(6), urlpath=str(local), mode="w")
    code, out, _ = run(capsys, "--url", FAKE_URL, "upload", str(local), "@personal/arr.b2nd")
    assert code == 0 and out.startswith(f"uploaded {local} to @personal/arr.b2nd (")
    assert fake.files["@personal/arr.b2nd"] == local.read_bytes()
    got = run_json(capsys, "--url", FAKE_URL, "cp", "@personal/arr.b2nd", "@personal/copy.b2nd")
    assert got == {"src": "@personal/arr.b2nd", "path": "@personal/copy.b2nd"}
    code, out, _ = run(capsys, "--url", FAKE_URL, "mv", "@personal/copy.b2nd", "@personal/moved.b2nd")
    assert code == 0 and out.strip() == "moved @personal/copy.b2nd to @personal/moved.b2nd"
    got = run_json(capsys, "--url", FAKE_URL, "rm", "@personal/moved.b2nd")
    assert got == {"removed": "@personal/moved.b2nd"}
    code, out, _ = run(capsys, "--url", FAKE_URL, "rm", "@personal/arr.b2nd")
    assert code == 0 and out.strip() == "removed @personal/arr.b2nd" and not fake.files
    code, _, err = run(capsys, "--url", FAKE_URL, "rm", "@personal/arr.b2nd")
    assert code == 2
    assert_one_line_error(err)
    monkeypatch.delenv("CATCLIENT_TOKEN")
    code, _, err = run(capsys, "--url", FAKE_URL, "upload", str(local), "@personal/arr.b2nd")
    assert code == 3 and "Unauthorized" in err


def test_publish(capsys, fake, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "README.md").write_text("# hi")
    blosc2.asarray(np.arange(4), urlpath=str(tree / "sub" / "a.b2nd"), mode="w")
    (tree / ".hidden").write_text("secret")
    code, out, _ = run(capsys, "--url", FAKE_URL, "--token", fake.TOKEN, "publish", str(tree),
                       "@personal/tree")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"uploaded {tree / 'README.md'} to @personal/tree/README.md")
    assert lines[-1].startswith("published 2 file(s)")
    assert set(fake.files) == {"@personal/tree/README.md", "@personal/tree/sub/a.b2nd"}
    got = run_json(capsys, "--url", FAKE_URL, "--token", fake.TOKEN, "publish", str(tree), "@public/t",
                   "--include-hidden")
    assert got["files"] == 3 and got["root"] == "@public/t"
    assert got["bytes"] == sum(u["size"] for u in got["uploaded"])
    paths = {u["path"] for u in got["uploaded"]}
    assert paths == {"@public/t/.hidden", "@public/t/README.md", "@public/t/sub/a.b2nd"}
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "--url", FAKE_URL, "--token", fake.TOKEN, "publish", str(empty), "@public/e")
    assert code == 1 and "no files" in err
    code, _, err = run(capsys, "--url", FAKE_URL, "publish", str(tree), "@public/anon")
    assert code == 3 and "0 of 2 files were published" in err


def test_human_size():
    assert [cli.human_size(n) for n in (0, 999, 1000, 1_234_567, 5e12, None)] == [
        "0 B", "999 B", "1.0 KB", "1.2 MB", "5.0 TB", "?"]
    assert cli.split_path_slice("a/b.b2nd[1, 2:3]") == ("a/b.b2nd", "1, 2:3")
    assert cli.split_path_slice("a/b.b2nd") == ("a/b.b2nd", None)
    assert Path(cli.config_dir()).name == "config"
