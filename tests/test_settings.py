"""Settings are declared once: the docs' table is theirs, and nothing else reads ``CAT_*``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from functions.aws import EMULATOR_REGION, build_publisher, is_loopback, session
from functions.settings import Settings, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def _docs_table() -> str:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    match = re.search(r"<!-- settings-table: begin -->\n(.*?)<!-- settings-table: end -->", text, re.S)
    assert match, "docs/ARCHITECTURE.md lost its settings-table markers"
    return match.group(1)


def test_docs_table_is_the_settings_class():
    # Regenerate with: python -m functions.settings
    assert _docs_table() == markdown_table()


def test_every_field_is_documented_with_its_variable():
    table = _docs_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"`{str(field.validation_alias).split()[0]}" in table or name in ("region_label",)
    for variable in ("CAT_MEMO_TTL", "CAT_LRU_BYTES", "CAT_FANOUT"):
        assert f"`{variable}`" in table


def test_from_env_reads_each_variable_once():
    env = {
        "CAT_ORIGIN_BUCKET": "o",
        "CAT_MEMO_TTL": "0.5",
        "CAT_LRU_BYTES": "1024",
        "CAT_FANOUT": "3",
        "CAT_MAX_UPLOAD": "7",
        "CAT_USER_QUOTA": "9",
        "CAT_LOGIN_FAILURES": "2",
        "AWS_ENDPOINT_URL": "",
        "AWS_REGION": "eu-west-1",
    }
    s = Settings.from_env(env)
    assert (s.origin_bucket, s.memo_ttl, s.lru_bytes, s.fanout) == ("o", 0.5, 1024, 3)
    assert (s.max_upload_bytes, s.user_quota_bytes, s.login_failures_per_minute) == (7, 9, 2)
    # an exported-but-empty endpoint is no endpoint; the region label falls back to AWS_REGION
    assert s.endpoint_url is None
    assert s.region_label == "eu-west-1"
    assert Settings.from_env({**env, "CAT_REGION_LABEL": "west"}).region_label == "west"


def test_from_env_without_origin_says_what_is_missing():
    with pytest.raises(RuntimeError, match="CAT_ORIGIN_BUCKET"):
        Settings.from_env({"CAT_CACHE_BUCKET": "c"})


def test_process_environment_and_keywords(monkeypatch):
    monkeypatch.setenv("CAT_ORIGIN_BUCKET", "from-env")
    monkeypatch.setenv("CAT_PAYLOAD_LIMIT", "123")
    assert Settings.from_env().payload_limit == 123
    # keywords (by field name) win over the environment
    s = Settings(origin_bucket="given")
    assert (s.origin_bucket, s.payload_limit) == ("given", 123)


def test_bad_values_are_refused_with_the_variable_named():
    with pytest.raises(ValueError, match="CAT_FANOUT"):
        Settings.from_env({"CAT_ORIGIN_BUCKET": "o", "CAT_FANOUT": "many"})


def test_settings_are_frozen():
    s = Settings(origin_bucket="o")
    with pytest.raises(ValueError):
        s.fanout = 2  # type: ignore[misc]
    assert s.model_copy(update={"fanout": 2}).fanout == 2


SOURCES = [p for pkg in ("functions", "infra", "catclient") for p in (ROOT / pkg).rglob("*.py")]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reads_a_cat_variable_itself(path):
    if path.name in ("settings.py", "envfile.py"):
        return  # the declaration itself; the env file *writes* the variables for shells
    text = path.read_text()
    reads = re.findall(r"environ(?:\.get)?\(?\[?\s*[\"'](CAT_[A-Z_]+|AWS_ENDPOINT_URL)", text)
    reads += re.findall(r"getenv\(\s*[\"'](CAT_[A-Z_]+|AWS_ENDPOINT_URL)", text)
    # The local stack's own options (its state directory) are not server settings
    reads = [r for r in reads if r not in ("CAT_LOCAL_STATE",)]
    assert not reads, f"{path.name} reads {reads} itself: declare it in functions/settings.py"


# --------------------------------------------------------------------- CLIs and the local stack


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://localhost:4566", True),
        ("http://[::1]:9000", True),
        ("https://s3.eu-west-1.amazonaws.com", False),
        ("http://10.0.0.5:4566", False),
        (None, False),
    ],
)
def test_loopback_endpoints(url, loopback):
    assert is_loopback(url) is loopback


def test_loopback_endpoint_defaults_region_and_credentials(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    session.cache_clear()
    try:
        local = session("http://127.0.0.1:1")
        assert local.region_name == EMULATOR_REGION
        assert local.get_credentials().access_key == "testing"
        # against AWS nothing is invented: boto3's own chain decides
        assert session(None).region_name is None
    finally:
        session.cache_clear()


def test_loopback_endpoint_keeps_what_the_user_set(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUSER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    session.cache_clear()
    try:
        local = session("http://127.0.0.1:1")
        assert local.region_name == "eu-north-1"
        assert local.get_credentials().access_key == "AKIAUSER"
    finally:
        session.cache_clear()


def test_publisher_is_built_alone():
    publisher = build_publisher(Settings(origin_bucket="o", endpoint_url="http://127.0.0.1:1"))
    # only the origin store and the event sink: no read path, caches or pools
    assert publisher.store.name == "o"
    assert publisher.events is None


def test_cat_publish_help_loads_no_aws_sdk():
    code = (
        "import sys\n"
        "from infra import publish\n"
        "try:\n    publish.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 loaded for --help'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "cat-publish" in out.stdout
