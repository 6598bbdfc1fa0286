"""The ``polybatch`` command line: ``main`` is the console entry point (``polybatch.cli:main``).

The commands live in :mod:`.job_commands` (running jobs and reading them back) and
:mod:`.info_commands` (providers, sandbox, estimates, usage, prices, config); :mod:`.common` holds
the options and printouts they share. This module builds the group and turns errors into exit codes.
"""

from __future__ import annotations

import errno
import sys

import click

from ..errors import PolybatchError
from .common import setup_logging
from .info_commands import config_group, estimate, providers, sandbox, usage
from .job_commands import (
    cancel,
    cleanup,
    forget,
    list_cmd,
    results,
    resume,
    retry,
    run,
    status,
    submit_cmd,
)
from .price_commands import prices
from .webhook_commands import webhooks_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="polybatch")
@click.option("-v", "--verbose", is_flag=True, help="Log what polybatch does (to stderr).")
def cli(verbose: bool) -> None:
    """Run LLM requests through the providers' discounted batch APIs.

    \b
    Example: polybatch run requests.jsonl -m openai:gpt-4o-mini --sandbox
    Exit codes: 0 done, 2 bad input or configuration (nothing was sent), 1 a provider
    refused or stayed down, 130 interrupted (`polybatch resume JOB` continues).
    """
    setup_logging(verbose)


for _command in (
    run,
    submit_cmd,
    resume,
    status,
    results,
    retry,
    cancel,
    cleanup,
    forget,
    list_cmd,
    providers,
    sandbox,
    estimate,
    usage,
    prices,
    config_group,
    webhooks_group,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point: run the CLI, turning polybatch errors into one line and an exit code."""
    try:
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:  # a ctx.exit(N) / Exit(N): click returns N
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # one line, like every other mistake: what was wrong and where the help is
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PolybatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno is None:
            raise
        click.echo(f"error: {os_error_line(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the job is in the ledger; `polybatch resume JOB` continues it", err=True
        )
        sys.exit(130)


def os_error_line(exc: OSError) -> str:
    """One line for an error of the machine (a full disk, a directory one may not write)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on device{where}; nothing partial is kept: free some space, then "
            "run the same command again or `polybatch resume JOB` (the job is in the ledger)"
        )
    return f"{exc.strerror or exc}{where}"


__all__ = ["cli", "main", "setup_logging"]
