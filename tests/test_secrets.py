"""Secrets: API keys never leak, private files stay private, the sandbox is local (issue 7, item 4).

A recognisable fake key (a "canary") is given to polybatch the way a user gives a real one; then
every byte polybatch wrote -- stdout, stderr with ``--verbose``, every file under
``POLYBATCH_HOME`` (the SQLite ledger with its ``-wal``/``-shm``, job files, results) and the
exported results -- is scanned for the key and for distinctive pieces of it. The same holds for a
failing run (the provider answers 401), for ``config show``, and for Python logging at DEBUG with
the SDKs' loggers turned all the way up.

File modes are checked under a umask of 022, the usual default, so "owner-only" is polybatch's
doing and not the test machine's. The sandbox's own hygiene is checked too: it binds 127.0.0.1 by
default and answers 401 to a missing or wrong key, without echoing the key back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.types import ASGIApp, Receive, Scope, Send

import polybatch.cli as pcli
from polybatch import submit
from polybatch.errors import ProviderError
from polybatch.items import BatchItem, BatchResult, ItemError
from polybatch.providers import BatchProvider, BatchStatus, Limits, SubmittedBatch
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch.testing import run_cli
from polybatch.testing.helpers import cli_server

OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-haiku-4-5"

# recognisable at both ends, so a truncated or partly masked copy is still caught
OPENAI_CANARY = "sk-SECRET-canary-4242-openai-9f8e7d6c5b4a3210"
ANTHROPIC_CANARY = "sk-ant-SECRET-canary-4242-anthropic-0a1b2c3d4e5f"
AZURE_CANARY = "azSECRETcanary4242azure0123456789abcdef"
#: the key the sandbox expects when a run must fail authentication
OTHER_KEY = "sk-the-sandbox-wants-this-one-0000"

PROVIDERS: dict[str, tuple[str, str, str, str]] = {
    # model, key variable, base-URL variable, sandbox mount
    "openai": (OPENAI, "OPENAI_API_KEY", "OPENAI_BASE_URL", "/openai/v1"),
    "anthropic": (ANTHROPIC, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "/anthropic"),
}
CANARIES = {"openai": OPENAI_CANARY, "anthropic": ANTHROPIC_CANARY}

REQUESTS = "".join(
    json.dumps({"custom_id": f"q-{i}", "prompt": f"Question {i}?", "max_tokens": 8}) + "\n"
    for i in range(5)
)


def needles(key: str) -> list[str]:
    """The key and distinctive pieces of it: whole, its last 12 and its 12 after the prefix."""
    body = key.split("-", 1)[1] if key.startswith("sk-") else key
    return [key, key[-12:], body[:12]]


def leaks(blob: bytes | str, key: str) -> list[str]:
    """The pieces of ``key`` found in ``blob`` (empty: no leak)."""
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    return [n for n in needles(key) if n.encode() in data]


def scan_tree(root: Path, key: str, *, skip: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    """Every file under ``root`` whose bytes hold a piece of ``key``."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path not in skip:
            hits = leaks(path.read_bytes(), key)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    # the usual default: a file that comes out 0600 is polybatch's doing, not the machine's
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@dataclass(frozen=True)
class Proc:
    code: int
    stdout: str
    stderr: str


def cli(*args: str, env: dict[str, str], cwd: Path) -> Proc:
    """``python -m polybatch.cli ARGS`` as a user runs it."""
    proc = run_cli(args, {**os.environ, **env}, cwd=cwd)
    return Proc(proc.returncode, proc.stdout, proc.stderr)


def cli_in_process(*args: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Proc:
    """The same entry point (``polybatch.cli.main``) in this process, stdio captured."""
    monkeypatch.setattr(sys, "argv", ["polybatch", *args])
    code = 0
    with CliRunner().isolation(env=env) as (out, err, _):
        try:
            pcli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Proc(code, out.getvalue().decode(), err.getvalue().decode())


def write_requests(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text(REQUESTS, encoding="utf-8")
    return path


def provider_env(name: str, server: SandboxServer, key: str, home: Path) -> dict[str, str]:
    _, key_var, url_var, mount = PROVIDERS[name]
    return {
        key_var: key,
        url_var: server.url + mount,
        "POLYBATCH_HOME": str(home),
        "XDG_CONFIG_HOME": str(home.parent / "xdg"),
    }


def verbose_run(
    requests: Path, model: str, out: Path, *, env: dict[str, str], cwd: Path
) -> tuple[Proc, str]:
    """``polybatch --verbose run REQUESTS -m MODEL -o OUT``, and the job id it printed."""
    run = cli(
        "--verbose",
        "run",
        str(requests),
        "-m",
        model,
        "-o",
        str(out),
        "--no-progress",
        env=env,
        cwd=cwd,
    )
    words = run.stdout.split()
    return run, words[1].rstrip(":") if len(words) > 1 else ""


def job_commands(job_id: str, *, env: dict[str, str], cwd: Path) -> list[Proc]:
    """The other commands that print a job's data, verbose, each of which must succeed."""
    outputs = []
    for args in [
        ("status", job_id),
        ("results", job_id),
        ("results", job_id, "--format", "openai"),
        ("list",),
        ("usage", job_id),
    ]:
        proc = cli("--verbose", *args, env=env, cwd=cwd)
        assert proc.code == 0, (args, proc.stderr)
        outputs.append(proc)
    return outputs


# -- (a) a whole job with --verbose: every byte written is clean --------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "key_source"),
    [("openai", "env"), ("anthropic", "env"), ("openai", "config-file")],
)
def test_whole_verbose_job_writes_the_key_nowhere(
    name: str,
    key_source: str,
    tmp_path: Path,
    polybatch_home: Path,
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    key = CANARIES[name]
    model, key_var, _, _ = PROVIDERS[name]
    server = make_sandbox(api_key=key)
    env = provider_env(name, server, key, polybatch_home)
    config = tmp_path / "polybatch.toml"
    if key_source == "config-file":
        # the key in [providers.openai] instead of the environment: it must not reach the
        # ledger's recorded provider settings either
        del env[key_var]
        config.write_text(f'[providers.{name}]\napi_key = "{key}"\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run, job_id = verbose_run(write_requests(tmp_path), model, out, env=env, cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert "5 results (5 succeeded)" in run.stdout
    assert "submitted as" in run.stderr  # --verbose did log: the scan below is not vacuous

    # the other commands that print job data, verbose too (once per provider is enough)
    outputs = [run, *(job_commands(job_id, env=env, cwd=tmp_path) if key_source == "env" else [])]

    for proc in outputs:
        assert leaks(proc.stdout, key) == []
        assert leaks(proc.stderr, key) == []
    files = sorted(p.name for p in polybatch_home.rglob("*") if p.is_file())
    assert "ledger.sqlite3" in files and "results.jsonl" in files and "items.jsonl" in files
    assert scan_tree(polybatch_home, key) == {}
    assert leaks(out.read_bytes(), key) == []
    # nothing stray next to the input either (the user's own config file excepted)
    assert scan_tree(tmp_path, key, skip=(config,)) == {}
    # and the key did travel: the sandbox only answers the right one
    assert server.engine.batches


# -- (b) a failing run: 401 from the provider, and the message stays clean ----------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_wrong_key_401_error_message_holds_no_key(
    name: str, tmp_path: Path, polybatch_home: Path, make_sandbox: Callable[..., SandboxServer]
) -> None:
    key = CANARIES[name]
    server = make_sandbox(api_key=OTHER_KEY)
    env = provider_env(name, server, key, polybatch_home)
    proc = cli(
        "--verbose",
        "run",
        str(write_requests(tmp_path)),
        "-m",
        PROVIDERS[name][0],
        "--no-progress",
        env=env,
        cwd=tmp_path,
    )
    assert proc.code == 1, proc.stderr
    assert "401" in proc.stderr and "Traceback" not in proc.stderr
    # one error line among the --verbose log lines (connections are logged closing after it)
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error: ")]) == 1
    assert leaks(proc.stdout, key) == [] and leaks(proc.stderr, key) == []
    assert scan_tree(tmp_path, key) == {}


class _EchoKey:
    """ASGI middleware answering every request 401 with the presented key in the body.

    Real services and gateways do echo keys (OpenAI shows a masked one; proxies may show it
    whole): polybatch must not pass that on to the user's terminal or logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        presented = (headers.get(b"x-api-key") or headers.get(b"authorization") or b"").decode()
        message = f"Incorrect API key provided: {presented}"
        body = json.dumps(
            {
                "type": "error",
                "error": {"message": message, "type": "authentication_error", "code": None},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def echo_server() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxEngine(api_key=OTHER_KEY))
    server.app.add_middleware(_EchoKey)  # before start: starlette builds the stack on first call
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "name",
    [
        "openai",
        "anthropic",
    ],
)
def test_a_server_that_echoes_the_key_does_not_make_polybatch_print_it(
    name: str,
    echo_server: SandboxServer,
    polybatch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = CANARIES[name]
    for var, value in provider_env(name, echo_server, key, polybatch_home).items():
        monkeypatch.setenv(var, value)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as info:
        submit(write_requests(tmp_path), PROVIDERS[name][0])
    assert info.value.status_code == 401
    assert leaks(str(info.value), key) == []
    assert leaks(caplog.text, key) == []


# -- (c) config show ---------------------------------------------------------------------------

CONFIG_WITH_KEYS = f"""
default_profile = "az"

[profiles.az]
model = "azure:gpt-4o-mini"
[profiles.az.providers.azure]
api_key = "{AZURE_CANARY}"

[providers.azure]
endpoint = "https://res.openai.azure.com"
api_version = "2024-10-21"
api_key = "{AZURE_CANARY}"
# a key under a name that does not say so: caught by its shape
note = "{OPENAI_CANARY}"

[providers.openai]
api_key = "{OPENAI_CANARY}"
"""


@pytest.mark.parametrize(
    "args",
    [
        ("config", "show"),
        ("config", "show", "-m", "azure:gpt-4o-mini"),
        ("config", "show", "-m", OPENAI),
        ("config", "show", "-m", ANTHROPIC),
        ("--verbose", "config", "show", "-p", "az"),
    ],
    ids=lambda a: " ".join(a),
)
def test_config_show_never_prints_a_key_in_full(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "polybatch.toml").write_text(CONFIG_WITH_KEYS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    env = {
        "OPENAI_API_KEY": OPENAI_CANARY,
        "ANTHROPIC_API_KEY": ANTHROPIC_CANARY,
        "AZURE_OPENAI_API_KEY": AZURE_CANARY,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    proc = cli_in_process(*args, env=env, monkeypatch=monkeypatch)
    assert proc.code == 0, proc.stderr
    shown = json.loads(proc.stdout)
    if shown["provider"] in ("azure", "openai"):
        # masked, not dropped: the last 4 characters tell two keys apart
        assert shown["provider_settings"]["api_key"].startswith("****")
    for key in (OPENAI_CANARY, ANTHROPIC_CANARY, AZURE_CANARY):
        assert leaks(proc.stdout, key) == [], key
        assert leaks(proc.stderr, key) == [], key


def test_config_show_error_path_prints_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "polybatch.toml").write_text(CONFIG_WITH_KEYS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    proc = cli_in_process("config", "show", "-p", "nope", env={}, monkeypatch=monkeypatch)
    assert proc.code == 2
    for key in (OPENAI_CANARY, AZURE_CANARY):
        assert leaks(proc.stdout + proc.stderr, key) == []


# -- (d) file permissions ----------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ledger_job_and_results_files_are_owner_only(
    tmp_path: Path, polybatch_home: Path, sandbox_server: SandboxServer
) -> None:
    job = submit(write_requests(tmp_path), OPENAI, sandbox=sandbox_server, chunk_size=2)
    job.wait(poll_min=0.02, poll_max=0.2, timeout=60)
    out = job.export_results(tmp_path / "exported.jsonl")
    files = [p for p in polybatch_home.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"ledger.sqlite3", "items.jsonl", "results.jsonl"} <= names
    assert any(p.parent.name == "results" for p in files)  # per-chunk results
    assert {str(p.relative_to(polybatch_home)): oct(_mode(p)) for p in files} == {
        str(p.relative_to(polybatch_home)): oct(0o600) for p in files
    }
    assert _mode(out) == 0o600


def test_sqlite_side_files_are_owner_only_while_the_ledger_is_open(
    tmp_path: Path, polybatch_home: Path, sandbox_server: SandboxServer
) -> None:
    # -wal and -shm exist only while a connection is open; look at them then
    job = submit(write_requests(tmp_path), OPENAI, sandbox=sandbox_server)
    side = [p for p in polybatch_home.iterdir() if p.name.startswith("ledger.sqlite3-")]
    assert side, "expected WAL side files while the ledger is open"
    assert {p.name: oct(_mode(p)) for p in side} == {p.name: oct(0o600) for p in side}
    job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


@pytest.mark.slow
def test_wire_files_left_by_a_failed_submission_are_owner_only(
    tmp_path: Path, polybatch_home: Path, make_sandbox: Callable[..., SandboxServer]
) -> None:
    # a 401 stops the run after planning: the encoded requests stay in the job directory
    server = make_sandbox(api_key=OTHER_KEY)
    env = provider_env("openai", server, OPENAI_CANARY, polybatch_home)
    proc = cli(
        "run", str(write_requests(tmp_path)), "-m", OPENAI, "--no-progress", env=env, cwd=tmp_path
    )
    assert proc.code == 1
    files = [p for p in polybatch_home.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".wire.jsonl") for p in files)
    assert {str(p.relative_to(polybatch_home)): oct(_mode(p)) for p in files} == {
        str(p.relative_to(polybatch_home)): oct(0o600) for p in files
    }


def test_results_command_output_file_is_owner_only(
    tmp_path: Path,
    polybatch_home: Path,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = submit(write_requests(tmp_path), OPENAI, sandbox=sandbox_server)
    job.wait(poll_min=0.02, poll_max=0.2, timeout=60)
    dest = tmp_path / "res.jsonl"
    proc = cli_in_process("results", job.id, "-o", str(dest), env={}, monkeypatch=monkeypatch)
    assert proc.code == 0, proc.stderr
    assert len(dest.read_text().splitlines()) == 5
    assert _mode(dest) == 0o600


# -- (e) the sandbox: loopback by default, and a key is required --------------------------------


def test_sandbox_defaults_to_loopback() -> None:
    host = next(p for p in pcli.sandbox.params if p.name == "host")
    assert host.default == "127.0.0.1"
    assert SandboxServer(SandboxEngine()).host == "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _non_loopback_address() -> str | None:
    """An address of this machine other than 127.x, if it has one (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            addr = str(s.getsockname()[0])
    except OSError:
        return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _status(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``polybatch sandbox`` in the foreground of a child process: (its URL, its key)."""
    tmp_path = tmp_path_factory.mktemp("sandbox-process")
    key = "sk-sandbox-process-key-4242"
    port = _free_port()
    args = ["sandbox", "--port", str(port), "--key", key]
    with cli_server(args, cwd=tmp_path) as first:
        assert first == f"polybatch sandbox on http://127.0.0.1:{port}", first
        yield f"http://127.0.0.1:{port}", key


ENDPOINTS: dict[str, tuple[str, Callable[[str], dict[str, str]]]] = {
    "openai": ("/openai/v1/batches", lambda k: {"Authorization": f"Bearer {k}"}),
    "anthropic": (
        "/anthropic/v1/messages/batches",
        lambda k: {"x-api-key": k, "anthropic-version": "2023-06-01"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_sandbox_process_binds_loopback_and_requires_the_key(
    name: str, sandbox_process: tuple[str, str]
) -> None:
    url, key = sandbox_process
    path, auth = ENDPOINTS[name]
    wrong = "sk-wrong-key-presented-7777"
    assert _status(url + path, {})[0] == 401
    code, body = _status(url + path, auth(wrong))
    assert code == 401
    assert wrong.encode() not in body  # a 401 never echoes what was presented
    assert _status(url + path, auth(key))[0] == 200
    other = _non_loopback_address()
    if other is not None:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
            pass


# -- (f) Python logging at DEBUG, SDK loggers included ------------------------------------------

SDK_LOGGERS = (
    "polybatch",
    "openai",
    "anthropic",
    "httpx2",
    "httpcore2",
    "httpx",
    "httpcore",
    "uvicorn",
)


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_debug_logging_of_a_whole_job_holds_no_key(
    name: str,
    tmp_path: Path,
    polybatch_home: Path,
    make_sandbox: Callable[..., SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = CANARIES[name]
    server = make_sandbox(api_key=key)
    for var, value in provider_env(name, server, key, polybatch_home).items():
        monkeypatch.setenv(var, value)
    # every logger at DEBUG, explicitly: an earlier in-process CLI run may have quietened the
    # SDK loggers (polybatch.cli does so on purpose), which would make this test vacuous
    caplog.set_level(logging.DEBUG)
    for logger in SDK_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=logger)
    job = submit(write_requests(tmp_path), PROVIDERS[name][0])
    job.wait(poll_min=0.02, poll_max=0.2, timeout=60)
    assert [r.status for r in job.results()] == ["succeeded"] * 5
    loggers = {r.name.split(".")[0] for r in caplog.records}
    assert "polybatch" in loggers and name in loggers  # the SDK did log at DEBUG
    rendered: list[Any] = [caplog.text]
    for record in caplog.records:
        rendered += [record.getMessage(), repr(record.args), record.exc_text or ""]
        rendered += [repr(v) for v in vars(record).values()]
    for text in rendered:
        assert leaks(str(text), key) == [], text


def test_verbose_keeps_the_http_transport_loggers_quiet() -> None:
    names = ("openai", "anthropic", "httpx2", "httpcore2")
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names})
    # logging.basicConfig does nothing while pytest's capture handlers sit on the root logger:
    # take them off for the call, as in a fresh process
    root.handlers[:] = []
    try:
        pcli.setup_logging(True)
        assert root.getEffectiveLevel() == logging.DEBUG  # polybatch's own logs are verbose
        loud = [n for n in names if logging.getLogger(n).getEffectiveLevel() < logging.WARNING]
        assert loud == []
    finally:
        for handler in root.handlers:
            handler.close()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for n, level in saved[2].items():
            logging.getLogger(n).setLevel(level)


def test_a_provider_masks_every_key_it_has_handed_to_a_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from polybatch.jobs.clients import make_provider

    monkeypatch.setenv("OPENAI_API_KEY", "sk-first-key-from-env-000")
    provider = make_provider("openai")
    assert provider.require_api_key() == "sk-first-key-from-env-000"
    # the environment changes before the next loop's client is built: both keys stay masked
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second-key-from-env-111")
    provider.require_api_key()
    said = "401 for sk-first-key-from-env-000 and sk-second-key-from-env-111"
    assert provider.scrub(said) == "401 for *** and ***"
    assert make_provider("openai", {"api_key": "k-123"}).scrub("k-123!") == "***!"


# -- (d) a server that echoes the key inside batch and item errors (issue 15, item 7) ----------

#: (provider, fault): what makes the sandbox put its errors (and the echoed key) where
ECHO_CASES = [
    # every request ends in the error file: its lines' messages carry the key
    ("openai", Faults(item_error_rate=1.0)),
    # the batch fails validation as a whole: errors.data[].message carries the key
    ("openai", Faults(batch_fail_rate=1.0)),
    # every request is an errored result whose error message carries the key
    ("anthropic", Faults(item_error_rate=1.0)),
]


@pytest.mark.parametrize(
    ("name", "faults"), ECHO_CASES, ids=["openai-error-file", "openai-batch-errors", "anthropic"]
)
def test_keys_echoed_in_batch_and_item_errors_reach_no_file_and_no_output(
    name: str,
    faults: Faults,
    tmp_path: Path,
    polybatch_home: Path,
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    key = CANARIES[name]
    model = PROVIDERS[name][0]
    server = make_sandbox(api_key=key, faults=faults, echo_key_in_errors=True)
    env = provider_env(name, server, key, polybatch_home)
    out = tmp_path / "out.jsonl"
    run, job_id = verbose_run(write_requests(tmp_path), model, out, env=env, cwd=tmp_path)
    assert run.code == 0 and "5 results (5 errored)" in run.stdout, (run.stdout, run.stderr)
    outputs = [run, *job_commands(job_id, env=env, cwd=tmp_path)]
    for proc in outputs:
        assert leaks(proc.stdout, key) == [], proc.stdout
        assert leaks(proc.stderr, key) == [], proc.stderr
    assert scan_tree(polybatch_home, key) == {}
    assert leaks(out.read_bytes(), key) == []
    # not vacuous: the server did echo the key, and what it said reached the results, masked
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 5
    assert all("***" in r["error"]["message"] for r in results), results[0]["error"]


def test_the_echoing_sandbox_does_echo(make_sandbox: Callable[..., SandboxServer]) -> None:
    server = make_sandbox(api_key=OPENAI_CANARY, echo_key_in_errors=True)
    assert OPENAI_CANARY in server.engine.echo_key("bad request")
    assert make_sandbox(api_key=OPENAI_CANARY).engine.echo_key("bad") == "bad"


# the base class's wrapping, on adapters of both styles (no SDK, no sandbox)

LEAKY_KEY = "lk-leaky-key-0123456789"


def _leaky_status(batch_id: str) -> BatchStatus:
    return BatchStatus(batch_id=batch_id, state="failed", message=f"bad key {LEAKY_KEY}")


def _leaky_results(batch_id: str) -> list[BatchResult]:
    said = f"refused for {LEAKY_KEY}"
    return [
        BatchResult(
            custom_id="a",
            status="errored",
            error=ItemError(code="x", message=said),
            response={"error": {"message": said, "n": 1, "list": [said, 2]}},
        ),
        # a success is the model's reply: left as it is
        BatchResult(custom_id="b", status="succeeded", text="fine"),
    ]


class _AsyncLeaky(BatchProvider):
    name = "asyncleaky"
    limits = Limits(max_requests=1, max_bytes=100)
    closed = False

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    async def asubmit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
        return SubmittedBatch(batch_id="b")

    async def apoll(self, batch_id: str) -> BatchStatus:
        return _leaky_status(batch_id)

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        try:
            for r in _leaky_results(batch_id):
                yield r
        finally:
            type(self).closed = True

    async def acancel(self, batch_id: str) -> None:
        pass


class _BlockingLeaky(BatchProvider):
    name = "blockingleaky"
    limits = Limits(max_requests=1, max_bytes=100)

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    def submit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
        return SubmittedBatch(batch_id="b")

    def poll(self, batch_id: str) -> BatchStatus:
        return _leaky_status(batch_id)

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        yield from _leaky_results(batch_id)

    def cancel(self, batch_id: str) -> None:
        pass


class _AsyncLeakySub(_AsyncLeaky):
    """A subclass calling its base: scrubbed twice, the same outcome."""

    name = "asyncleakysub"

    async def apoll(self, batch_id: str) -> BatchStatus:
        return await super().apoll(batch_id)


@pytest.mark.parametrize("cls", [_AsyncLeaky, _BlockingLeaky, _AsyncLeakySub])
def test_every_adapter_reports_statuses_and_failures_scrubbed(cls: type[BatchProvider]) -> None:
    provider = cls(api_key=LEAKY_KEY)
    for status in (provider.poll("b1"), asyncio.run(provider.apoll("b1"))):
        assert status.message == "bad key ***"

    async def collect() -> list[BatchResult]:
        return [r async for r in provider.aresults("b1")]

    for results in (list(provider.results("b1")), asyncio.run(collect())):
        failed, ok = results
        assert failed.error is not None and failed.error.message == "refused for ***"
        assert failed.response == {
            "error": {"message": "refused for ***", "n": 1, "list": ["refused for ***", 2]}
        }
        assert ok.text == "fine" and ok.response is None


def test_a_consumer_that_stops_early_closes_the_adapters_stream() -> None:
    _AsyncLeaky.closed = False
    provider = _AsyncLeaky(api_key=LEAKY_KEY)

    async def first() -> BatchResult:
        stream = provider.aresults("b1")
        result = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        return result

    assert asyncio.run(first()).custom_id == "a"
    assert _AsyncLeaky.closed
