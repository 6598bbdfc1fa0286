"""Bad input at the CLI, end to end: one clear line, exit code 2, nothing uploaded (issue 7, item 3).

Every case runs ``polybatch run`` (or ``submit``) as a user runs it, against a sandbox served by the
test process, and checks three things:

* the exit code is 2;
* stderr is exactly one ``error: ...`` line (no traceback) naming the file, the line and the field
  where they apply (``error: PATH:LINE: field 'FIELD': message``);
* the sandbox saw no request at all (``engine.requests_seen == []``): nothing was uploaded.

Most cases run in-process: ``polybatch.cli.main`` (the console-script entry point, which wraps
``polybatch.cli.cli`` and turns polybatch errors into one line and an exit code) under
``click.testing.CliRunner``'s stdio isolation. A handful also run as real subprocesses
(``python -m polybatch.cli``) so that the process boundary itself is covered. Two control tests
prove the wiring: the same harness with a good file does reach the sandbox, so an empty
``requests_seen`` in the table means "refused", not "pointed somewhere else".

The parser-level table lives in ``tests/test_inputs.py``; this one is about what the user sees.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from click.testing import CliRunner

from polybatch.cli import main
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY

OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-haiku-4-5"
OPENAI_LIMIT = 200 * 1024 * 1024  # OpenAIProvider.limits.max_bytes

GOOD = '{"custom_id": "ok-1", "prompt": "Hello?"}'
GOOD2 = '{"custom_id": "ok-2", "prompt": "Goodbye?"}'


@dataclass(frozen=True)
class Outcome:
    """What the user sees: exit code, stdout and stderr."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    """One malformed input and what the one-line error must say about it."""

    id: str
    #: the input file's bytes (None: no file is written, for the "missing file" case)
    data: bytes | None
    #: the fragment the message must contain (the reason, in the user's words)
    fragment: str
    #: the input line the message must name as ``PATH:LINE:`` (None: no line applies)
    line: int | None = None
    #: the field the message must name as ``field 'FIELD':`` (None: no field applies)
    field: str | None = None
    model: str | None = OPENAI
    command: Literal["run", "submit"] = "run"
    #: "input": the message names the input file; "config": the config file; None: neither
    names: Literal["input", "config"] | None = "input"
    #: make the input path a directory instead of a file
    directory: bool = False
    #: a polybatch.toml, found through the working directory or POLYBATCH_CONFIG
    config: str | None = None
    config_via: Literal["cwd", "env"] = "cwd"
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: also run it as a real subprocess
    subprocess: bool = False
    #: the product misbehaves today: the case asserts the right behaviour and is xfail(strict)
    xfail: str | None = None


def lines(*rows: str | bytes) -> bytes:
    """JSONL bytes: each row and a newline."""
    return b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows)


def one(obj: object) -> str:
    return json.dumps(obj)


def msgs(*turns: tuple[str, object]) -> list[dict[str, object]]:
    return [{"role": role, "content": content} for role, content in turns]


def openai_line(**overrides: object) -> str:
    line: dict[str, object] = {
        "custom_id": "o-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": msgs(("user", "hi"))},
    }
    line.update(overrides)
    return json.dumps(line)


CASES: list[Case] = [
    # -- not JSON, or not a JSON object ---------------------------------------------------------
    Case(
        "broken-json",
        lines(GOOD, '{"prompt": "x"'),
        "invalid JSON",
        line=2,
        subprocess=True,
    ),
    Case(
        "truncated-last-line",
        GOOD.encode() + b"\n" + GOOD2.encode() + b'\n{"custom_id": "c", "prompt": "Hel',
        "invalid JSON",
        line=3,
    ),
    # a list is read as a list of messages (polybatch.shapes): the member that is none is named
    Case(
        "json-array",
        lines(GOOD, '[{"prompt": "x"}]'),
        "expected a JSON object (or a list of messages), got an object without 'role'",
        2,
        field="[0]",
    ),
    Case(
        "bare-string",
        lines('"hello"'),
        "expected a JSON object (or a list of messages), got str",
        1,
    ),
    Case(
        "bare-number",
        lines(GOOD, "42"),
        "expected a JSON object (or a list of messages), got int",
        2,
    ),
    # -- wrong types ----------------------------------------------------------------------------
    Case(
        "max_tokens-a-string",
        lines(one({"prompt": "x", "max_tokens": "10"})),
        "valid integer",
        line=1,
        field="max_tokens",
    ),
    Case(
        "seed-a-boolean",
        lines(GOOD, one({"prompt": "x", "seed": True})),
        "valid integer",
        line=2,
        field="seed",
    ),
    Case(
        "temperature-a-word",
        lines(GOOD, one({"prompt": "x", "temperature": "hot"})),
        "valid number",
        line=2,
        field="temperature",
        command="submit",
    ),
    Case(
        "max_tokens-negative",
        lines(one({"prompt": "x", "max_tokens": -5})),
        "greater than or equal to 1",
        line=1,
        field="max_tokens",
    ),
    Case(
        "messages-a-string",
        lines(one({"messages": "hi"})),
        "valid list",
        line=1,
        field="messages",
    ),
    Case(
        "content-a-number",
        lines(GOOD, one({"messages": msgs(("user", 5))})),
        "valid",
        line=2,
        field="messages[0].content",
    ),
    Case(
        "system-not-a-string",
        lines(one({"prompt": "x", "system": ["a"]})),
        "must be a string",
        line=1,
        field="system",
    ),
    # -- messages -------------------------------------------------------------------------------
    Case("empty-messages", lines(one({"messages": []})), "at least 1", 1, "messages"),
    Case(
        "unknown-role",
        lines(GOOD, one({"messages": msgs(("tool", "x"))})),
        "'system', 'user' or 'assistant'",
        line=2,
        field="messages[0].role",
    ),
    Case(
        "message-without-content",
        lines(one({"messages": [{"role": "user"}]})),
        "Field required",
        line=1,
        field="messages[0].content",
    ),
    Case(
        "empty-content-list",
        lines(one({"messages": msgs(("user", []))})),
        "must not be an empty list",
        line=1,
        field="messages[0].content",
    ),
    Case(
        "only-a-system-turn",
        lines(GOOD, one({"messages": msgs(("system", "be brief"))})),
        "messages need at least one user or assistant turn",
        line=2,
    ),
    Case(
        "missing-messages",
        lines(one({"custom_id": "a"})),
        "give 'messages' or 'prompt'",
        line=1,
        field="messages",
    ),
    Case(
        "unknown-top-level-field",
        lines(GOOD, one({"prompt": "x", "colour": "red"})),
        "unknown field",
        line=2,
        field="colour",
    ),
    Case(
        "prompt-and-messages",
        lines(one({"prompt": "x", "messages": msgs(("user", "y"))})),
        "not both",
        line=1,
        field="prompt",
    ),
    Case("empty-prompt", lines(one({"prompt": "   "})), "non-empty string", 1, "prompt"),
    # -- custom_id ------------------------------------------------------------------------------
    Case(
        "duplicate-custom_id",
        lines(
            one({"custom_id": "a", "prompt": "x"}),
            one({"custom_id": "b", "prompt": "x"}),
            one({"custom_id": "a", "prompt": "y"}),
        ),
        # both lines are named: the duplicate (PATH:3) and the first use (checked in the test)
        "duplicate custom_id 'a' (first used at",
        line=3,
        field="custom_id",
        subprocess=True,
    ),
    Case(
        "custom_id-over-512",
        lines(one({"custom_id": "x" * 513, "prompt": "x"})),
        "at most 512 characters",
        line=1,
        field="custom_id",
    ),
    Case(
        "custom_id-a-number",
        lines(one({"custom_id": 7, "prompt": "x"})),
        "valid string",
        line=1,
        field="custom_id",
    ),
    Case(
        "custom_id-empty",
        lines(one({"custom_id": "", "prompt": "x"})),
        "at least 1 character",
        line=1,
        field="custom_id",
    ),
    # -- size: the smallest honest trigger is one item just over OpenAI's 200 MB per batch --------
    Case(
        "request-over-provider-byte-limit",
        b'{"custom_id": "big", "prompt": "' + b"a" * OPENAI_LIMIT + b'"}\n',
        "item 'big' encodes to",
        line=1,
        field="messages",
    ),
    # -- valid items the chosen provider cannot take --------------------------------------------
    Case(
        "anthropic-seed",
        lines(GOOD, one({"custom_id": "s", "prompt": "x", "seed": 3})),
        "Anthropic does not support 'seed'",
        line=2,
        field="seed",
        model=ANTHROPIC,
        subprocess=True,
    ),
    Case(
        "anthropic-temperature-over-1",
        lines(one({"custom_id": "t", "prompt": "x", "temperature": 1.5})),
        "Anthropic accepts temperature 0-1",
        line=1,
        field="temperature",
        model=ANTHROPIC,
        command="submit",
    ),
    Case(
        "anthropic-assistant-first",
        lines(one({"custom_id": "a", "messages": msgs(("assistant", "x"), ("user", "y"))})),
        "first non-system turn to be 'user'",
        line=1,
        field="messages[0].role",
        model=ANTHROPIC,
    ),
    Case(
        "openai-stream-in-extra",
        lines(openai_line(body={"messages": msgs(("user", "hi")), "stream": True})),
        "'stream' cannot be set through extra",
        line=1,
        field="extra.stream",
    ),
    Case(
        "openai-json_schema-without-name",
        lines(one({"prompt": "x", "response_format": {"type": "json_schema"}})),
        "json_schema needs a 'name'",
        line=1,
        field="response_format.json_schema.name",
    ),
    # -- OpenAI batch-format lines --------------------------------------------------------------
    Case("openai-line-GET", lines(openai_line(method="GET")), "must be POST", 1, "method"),
    Case(
        "openai-line-wrong-url",
        lines(GOOD, openai_line(url="/v1/images/generations")),
        "unsupported endpoint '/v1/images/generations'",
        line=2,
        field="url",
    ),
    Case(
        "openai-line-body-not-object",
        lines(openai_line(body=["not", "an", "object"])),
        "must be a JSON object",
        line=1,
        field="body",
    ),
    Case(
        "openai-line-unknown-key",
        lines(openai_line(headers={"x": "y"})),
        "unknown field",
        line=1,
        field="headers",
    ),
    Case(
        "response_format-type-xml",
        lines(one({"prompt": "x", "response_format": {"type": "xml"}})),
        "text, json_object or json_schema",
        line=1,
        field="response_format",
    ),
    # -- bytes that are not text ----------------------------------------------------------------
    Case(
        "binary-garbage",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\xff\xe0garbage",
        "not UTF-8 text",
        line=1,
        subprocess=True,
    ),
    Case(
        "zip-bytes-valid-utf8",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        "invalid JSON",
        line=1,
    ),
    Case(
        "invalid-utf8-on-line-3",
        lines(GOOD, GOOD2, b'{"custom_id": "c", "prompt": "caf\xe9"}'),
        "not UTF-8 text (byte",
        line=3,
    ),
    # -- the file itself ------------------------------------------------------------------------
    Case("empty-file", b"", "the file holds no requests"),
    Case("only-blank-lines", b"\n   \n\t\n\n", "the file holds no requests"),
    Case("missing-file", None, "no such file", subprocess=True),
    Case("a-directory", b"", "is a directory", directory=True),
    # -- configuration --------------------------------------------------------------------------
    Case(
        "toml-syntax-error",
        lines(GOOD),
        "invalid TOML",
        names="config",
        config='default_profile = "p"\n[profiles.p\nmodel = "openai:gpt-4o-mini"\n',
        model=None,
        subprocess=True,
    ),
    Case(
        "toml-unknown-key",
        lines(GOOD),
        "key 'profiles.p.colour': unknown key",
        names="config",
        config='[profiles.p]\nmodel = "openai:gpt-4o-mini"\ncolour = "red"\n',
    ),
    Case(
        "toml-wrong-typed-value",
        lines(GOOD),
        "key 'profiles.p.max_tokens': Input should be a valid integer",
        names="config",
        config='[profiles.p]\nmodel = "openai:gpt-4o-mini"\nmax_tokens = "lots"\n',
        config_via="env",
    ),
    Case(
        "toml-malformed-model",
        lines(GOOD),
        "key 'profiles.p.model': model 'gpt-4o-mini' must be written 'provider:model'",
        names="config",
        config='default_profile = "p"\n[profiles.p]\nmodel = "gpt-4o-mini"\n',
        model=None,
    ),
    Case(
        "POLYBATCH_CONFIG-names-no-file",
        lines(GOOD),
        "POLYBATCH_CONFIG names no file",
        names=None,
        env={"POLYBATCH_CONFIG": "/nonexistent/polybatch.toml"},
    ),
    Case(
        "unknown-profile",
        lines(GOOD),
        "unknown profile 'nope'",
        names="config",
        config='[profiles.p]\nmodel = "openai:gpt-4o-mini"\n',
        extra_args=("-p", "nope"),
    ),
    Case(
        "unknown-profile-from-env",
        lines(GOOD),
        "unknown profile 'nope' (from POLYBATCH_PROFILE)",
        names=None,
        env={"POLYBATCH_PROFILE": "nope"},
    ),
    Case(
        "unknown-provider",
        lines(GOOD),
        "unknown provider 'nope'; installed providers: ",
        names=None,
        model="nope:some-model",
    ),
    Case(
        "toml-unknown-provider-in-profile",
        lines(GOOD),
        "key 'profiles.p.model': unknown provider 'nope'",
        names="config",
        config='default_profile = "p"\n[profiles.p]\nmodel = "nope:some-model"\n',
        model=None,
    ),
    Case(
        "model-without-provider",
        lines(GOOD),
        "--model: model 'gpt-4o-mini' must be written 'provider:model'",
        names=None,
        model="gpt-4o-mini",
    ),
    Case("no-model-at-all", lines(GOOD), "no model", names=None, model=None),
    # -- numbers JSON does not have: NaN and Infinity anywhere (issue 15, item 6) ---------------
    Case(
        "nan-temperature",
        lines(GOOD, '{"prompt": "x", "temperature": NaN}'),
        "NaN is not a JSON number",
        line=2,
        field="temperature",
        subprocess=True,
    ),
    Case(
        "infinity-top_p",
        lines('{"prompt": "x", "top_p": Infinity}'),
        "Infinity is not a JSON number",
        line=1,
        field="top_p",
    ),
    Case(
        "minus-infinity-seed",
        lines('{"prompt": "x", "seed": -Infinity}'),
        "-Infinity is not a JSON number",
        line=1,
        field="seed",
    ),
    Case(
        "nan-max_tokens",
        lines('{"prompt": "x", "max_tokens": NaN}'),
        "NaN is not a JSON number",
        line=1,
        field="max_tokens",
    ),
    Case(
        "nan-custom_id",
        lines('{"custom_id": NaN, "prompt": "x"}'),
        "NaN is not a JSON number",
        line=1,
        field="custom_id",
    ),
    Case(
        "nan-in-extra",
        lines(GOOD, '{"prompt": "x", "extra": {"logit_bias": {"50256": NaN}}}'),
        "NaN is not a JSON number",
        line=2,
        field="extra.logit_bias.50256",
        subprocess=True,
    ),
    Case(
        "infinity-in-extra-metadata-anthropic",
        lines('{"custom_id": "m", "prompt": "x", "extra": {"metadata": {"score": Infinity}}}'),
        "Infinity is not a JSON number",
        line=1,
        field="extra.metadata.score",
        model=ANTHROPIC,
        subprocess=True,
    ),
    Case(
        "nan-in-extra-anthropic",
        lines('{"custom_id": "n", "prompt": "x", "extra": {"top_k": NaN}}'),
        "NaN is not a JSON number",
        line=1,
        field="extra.top_k",
        model=ANTHROPIC,
        command="submit",
    ),
    Case(
        "infinity-in-response_format-schema",
        lines(
            '{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": '
            '{"name": "n", "schema": {"type": "number", "maximum": Infinity}}}}'
        ),
        "Infinity is not a JSON number",
        line=1,
        field="response_format.json_schema.schema.maximum",
    ),
    Case(
        "nan-in-a-content-part",
        lines(
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "x", '
            '"weight": NaN}]}]}'
        ),
        "NaN is not a JSON number",
        line=1,
        field="messages[0].content[0].weight",
    ),
    Case(
        "nan-in-openai-line-body",
        lines(
            '{"custom_id": "o-1", "method": "POST", "url": "/v1/chat/completions", "body": '
            '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
            '"frequency_penalty": NaN}}'
        ),
        "NaN is not a JSON number",
        line=1,
        field="body.frequency_penalty",
    ),
    Case(
        "number-too-large-for-a-double",
        lines('{"prompt": "x", "extra": {"presence_penalty": 1e400}}'),
        "Infinity is not a JSON number",
        line=1,
        field="extra.presence_penalty",
    ),
    # -- nesting deeper than polybatch's bound, and deeper than Python's recursion limit --------
    Case(
        "deep-nesting-in-extra",
        lines('{"prompt": "x", "extra": {"a": ' + "[" * 100 + "]" * 100 + "}}"),
        "nested deeper than 64 levels",
        line=1,
        field="extra",
    ),
    Case(
        "deep-nesting-past-the-recursion-limit",
        lines(GOOD, '{"prompt": "x", "extra": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
        "nested deeper than 64 levels",
        line=2,
        field="extra",
        subprocess=True,
    ),
    Case(
        "deep-nesting-in-a-content-part",
        lines(
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "m": '
            + '{"k": ' * 80
            + "1"
            + "}" * 80
            + "}]}]}"
        ),
        "nested deeper than 64 levels",
        line=1,
        field="messages",
    ),
    Case(
        "deep-nesting-in-openai-line-body",
        lines(
            '{"custom_id": "o-1", "method": "POST", "url": "/v1/chat/completions", "body": '
            '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
            '"metadata": ' + "[" * 5000 + "]" * 5000 + "}}"
        ),
        "nested deeper than 64 levels",
        line=1,
        field="body",
    ),
    # -- lone surrogates: a \\ud800 escape is valid JSON syntax but no text at all -----------------
    Case(
        "lone-surrogate-in-prompt",
        lines('{"prompt": "x\\ud800y"}'),
        "lone surrogate",
        line=1,
        field="prompt",
        subprocess=True,
    ),
    Case(
        "lone-low-surrogate-in-content",
        lines(GOOD, '{"messages": [{"role": "user", "content": "\\udc00"}]}'),
        "lone surrogate",
        line=2,
        field="messages[0].content",
    ),
    Case(
        "lone-surrogate-in-system",
        lines('{"prompt": "x", "system": "be \\ud83d brief"}'),
        "lone surrogate",
        line=1,
        field="system",
    ),
    Case(
        "lone-surrogate-in-custom_id",
        lines('{"custom_id": "a\\udfffb", "prompt": "x"}'),
        "lone surrogate",
        line=1,
        field="custom_id",
    ),
    Case(
        "lone-surrogate-in-a-key-of-extra",
        lines('{"prompt": "x", "extra": {"metadata": {"\\ud800": "v"}}}'),
        "a key holds a lone surrogate",
        line=1,
        field="extra.metadata",
    ),
    Case(
        "lone-surrogate-anthropic",
        lines('{"custom_id": "s", "prompt": "caf\\ud800"}'),
        "lone surrogate",
        line=1,
        field="prompt",
        model=ANTHROPIC,
        subprocess=True,
    ),
    Case(
        "lone-surrogate-in---system",
        lines(GOOD),
        "lone surrogate",
        field="system_prompt",
        names=None,
        # what a non-UTF-8 byte in argv becomes (Python decodes argv with surrogateescape)
        extra_args=("--system", "be \udcff brief"),
        subprocess=True,
    ),
    Case(
        "lone-surrogate-in-stop",
        lines('{"prompt": "x", "stop": ["ok", "\\udbff"]}'),
        "lone surrogate",
        line=1,
        field="stop[1]",
    ),
    # -- max_tokens beyond any model's limit ----------------------------------------------------
    Case(
        "max_tokens-1e30",
        lines('{"prompt": "x", "max_tokens": 1e30}'),
        "valid integer",
        line=1,
        field="max_tokens",
    ),
    Case(
        "max_tokens-2-to-the-63",
        lines(one({"prompt": "x", "max_tokens": 2**63})),
        "less than or equal to 1000000",
        line=1,
        field="max_tokens",
        subprocess=True,
    ),
    Case(
        "max_tokens-2-to-the-63-anthropic",
        lines(one({"custom_id": "m", "prompt": "x", "max_tokens": 2**63})),
        "less than or equal to 1000000",
        line=1,
        field="max_tokens",
        model=ANTHROPIC,
    ),
    Case(
        "max_completion_tokens-huge-in-openai-line",
        lines(
            openai_line(body={"messages": msgs(("user", "hi")), "max_completion_tokens": 10**30})
        ),
        "less than or equal to 1000000",
        line=1,
        field="max_tokens",
    ),
    Case(
        "toml-max_tokens-2-to-the-63",
        lines(GOOD),
        "key 'profiles.p.max_tokens': Input should be less than or equal to 1000000",
        names="config",
        config='default_profile = "p"\n[profiles.p]\nmodel = "openai:gpt-4o-mini"\n'
        "max_tokens = 9223372036854775807\n",
        model=None,
    ),
    Case(
        "toml-temperature-nan",
        lines(GOOD),
        "key 'profiles.p.temperature': Input should be a finite number",
        names="config",
        config='[profiles.p]\nmodel = "openai:gpt-4o-mini"\ntemperature = nan\n',
    ),
    Case(
        "seed-beyond-64-bits",
        lines(one({"prompt": "x", "seed": 2**64})),
        # the OpenAI adapter's own rule (seeds are 64-bit there)
        "Invalid 'seed': expected a 64-bit integer.",
        line=1,
        field="seed",
    ),
]

SUBPROCESS_CASES = [c for c in CASES if c.subprocess]


def _params(cases: list[Case]) -> list[object]:
    return [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [],
        )
        for c in cases
    ]


# -- running the CLI ---------------------------------------------------------------------------


@dataclass
class Prepared:
    """A case laid out on disk: the arguments, the environment and the working directory."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    input_path: Path
    config_path: Path | None


def sandbox_env(server: SandboxServer) -> dict[str, str]:
    """The variables a user sets to point the SDKs at the sandbox (what the CLI reads)."""
    return {
        "OPENAI_API_KEY": SANDBOX_KEY,
        "OPENAI_BASE_URL": server.url + "/openai/v1",
        "ANTHROPIC_API_KEY": SANDBOX_KEY,
        "ANTHROPIC_BASE_URL": server.url + "/anthropic",
    }


def prepare(case: Case, tmp_path: Path, server: SandboxServer) -> Prepared:
    work = tmp_path / "work"
    work.mkdir()
    input_path = work / "requests.jsonl"
    if case.directory:
        input_path.mkdir()
    elif case.data is not None:
        input_path.write_bytes(case.data)
    env = {
        **sandbox_env(server),
        # no user-level polybatch.toml may leak into the test
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        **case.env,
    }
    config_path = None
    if case.config is not None:
        config_path = work / "polybatch.toml"
        config_path.write_text(case.config, encoding="utf-8")
        if case.config_via == "env":
            # somewhere the working directory would not find it
            config_path = config_path.rename(tmp_path / "elsewhere.toml")
            env["POLYBATCH_CONFIG"] = str(config_path)
    args = [case.command, str(input_path)]
    if case.model is not None:
        args += ["-m", case.model]
    args += list(case.extra_args)
    if case.command == "run":
        args.append("--no-progress")
    return Prepared(args, env, work, input_path, config_path)


def run_in_process(p: Prepared, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """``polybatch ARGS`` through the real entry point, in this process."""
    monkeypatch.chdir(p.cwd)
    monkeypatch.setattr(sys, "argv", ["polybatch", *p.args])
    runner = CliRunner()
    code = 0
    with runner.isolation(env=p.env) as (out, err, _):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


def run_subprocess(p: Prepared) -> Outcome:
    """``python -m polybatch.cli ARGS`` as a separate process."""
    proc = subprocess.run(
        [sys.executable, "-m", "polybatch.cli", *p.args],
        capture_output=True,
        text=True,
        env={**os.environ, **p.env},
        cwd=p.cwd,
        timeout=120,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def check(case: Case, p: Prepared, outcome: Outcome, server: SandboxServer) -> None:
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    assert "Traceback" not in outcome.stderr
    # one line on stderr, nothing on stdout: the user reads one clear message
    assert outcome.stdout == ""
    err_lines = outcome.stderr.splitlines()
    assert len(err_lines) == 1, outcome.stderr
    (message,) = err_lines
    assert message.startswith("error: "), message
    path = p.input_path
    if case.names == "input":
        where = f"{path}:{case.line}: " if case.line is not None else f"{path}: "
        assert message.startswith(f"error: {where}"), message
    elif case.names == "config":
        assert p.config_path is not None
        assert str(p.config_path) in message, message
    if case.field is not None:
        assert f"field '{case.field}': " in message, message
    else:
        assert "field '" not in message, message
    assert case.fragment in message, message
    if case.id == "duplicate-custom_id":
        assert message.endswith(f"(first used at {path}:1)"), message
    if case.id == "toml-syntax-error":
        assert "line 2" in message, message  # tomllib's position: the unclosed table header
    # nothing was uploaded, nothing was even asked
    assert server.engine.requests_seen == []
    assert server.engine.batches == {}


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_in_process(
    case: Case, tmp_path: Path, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = prepare(case, tmp_path, sandbox_server)
    check(case, p, run_in_process(p, monkeypatch), sandbox_server)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(SUBPROCESS_CASES))
def test_bad_input_subprocess(case: Case, tmp_path: Path, sandbox_server: SandboxServer) -> None:
    p = prepare(case, tmp_path, sandbox_server)
    check(case, p, run_subprocess(p), sandbox_server)


def test_the_table_is_big_enough() -> None:
    # issue 7 asks for at least 30 malformed inputs, and at least 5 through a real process;
    # issue 15 (item 11) for at least 70
    assert len(CASES) >= 70
    assert len(SUBPROCESS_CASES) >= 5
    assert len({c.id for c in CASES}) == len(CASES)


# -- controls: the same harness with good input does reach the sandbox -------------------------


@pytest.fixture(params=["in-process", "subprocess"])
def runner_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.slow
@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_control_good_input_reaches_the_sandbox(
    model: str,
    runner_kind: str,
    tmp_path: Path,
    sandbox_server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = prepare(Case("good", lines(GOOD, GOOD2), "", model=model), tmp_path, sandbox_server)
    run_it: Callable[[], Outcome] = (
        (lambda: run_in_process(p, monkeypatch))
        if runner_kind == "in-process"
        else (lambda: run_subprocess(p))
    )
    outcome = run_it()
    assert outcome.code == 0, outcome.stderr
    assert "2 results (2 succeeded)" in outcome.stdout
    assert sandbox_server.engine.requests_seen != []
    assert len(sandbox_server.engine.batches) == 1


# -- a provider's refusal names the item once (the codec and the planner both used to) ---------


def test_provider_refusal_names_the_item_once(
    tmp_path: Path, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = Case(
        "anthropic-seed",
        lines(one({"custom_id": "s", "prompt": "x", "seed": 3})),
        "",
        model=ANTHROPIC,
    )
    p = prepare(case, tmp_path, sandbox_server)
    outcome = run_in_process(p, monkeypatch)
    assert outcome.code == 2
    assert outcome.stderr.count("item 's'") == 1, outcome.stderr
