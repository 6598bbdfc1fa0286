"""The entry points: :func:`submit`, :func:`asubmit`, :func:`run` and :func:`arun`.

``submit`` resolves the settings (arguments > environment > profile), builds the provider, plans
the job (reading and validating every item, estimating its cost, enforcing the budget), records it
in the ledger and sends its first chunks. The same input, model and options give the same job id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

from pydantic import BaseModel

from .. import config as _config
from ..config import JobOptions, RequestDefaults
from ..errors import ConfigError, JobExistsError, PricingError, UnknownProviderError
from ..inputs import coerce_items, input_model, read_numbered_items
from ..items import BatchItem
from ..plugins import get_registry
from ..pricing import Estimate, Estimator, UnknownModelError, check_budget, estimator
from ..providers import BatchProvider
from . import lease, queue
from .access import private_dir
from .clients import make_provider, public_settings, remember
from .driver import DEFAULT_MAX_IN_FLIGHT, planned_rows
from .files import JobFiles, ResultList, jobs_dir
from .handle import Job
from .ledger import JobRow, Ledger, open_ledger
from .planner import ITEMS_FILE, Plan, plan_job
from .sandboxed import job_identity, pointing_settings, sandbox_options
from .stream import ResultCallback

log = logging.getLogger("polybatch")
_M = TypeVar("_M", bound=BaseModel)


class SubmitKeywords(TypedDict, total=False):
    """The request defaults and job options :func:`submit` also takes one by one (0.1's API).

    Each builds the matching field of :class:`RequestDefaults` (``system`` is ``system_prompt``)
    or :class:`JobOptions`, and wins over the ``defaults``/``options`` given; None means unset.
    """

    system: str | None
    system_prompt: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: str | list[str] | None
    response_format: dict[str, Any] | None
    response_model: type[BaseModel] | str | None
    chunk_size: int | None
    max_in_flight: int | None
    max_enqueued_tokens: int | None
    keep_files: bool
    retry_failed: int
    max_cost: Decimal | str | float | None
    new: bool
    if_exists: str | None
    name: str | None
    delete_outputs: bool
    completion_window: str | None
    home: Path | None
    poll_min: float | None
    poll_max: float | None
    queue_backoff: float | None


def request_and_options(
    defaults: RequestDefaults | None,
    options: JobOptions | None,
    keywords: Mapping[str, Any],
) -> tuple[RequestDefaults, JobOptions]:
    """``defaults`` and ``options`` with the one-by-one keywords applied (and validated)."""
    kw = dict(keywords)
    if "system" in kw:
        kw["system_prompt"] = kw.pop("system")
    unknown = sorted(set(kw) - set(RequestDefaults.model_fields) - set(JobOptions.model_fields))
    if unknown:
        raise TypeError(f"submit() got an unexpected keyword argument {unknown[0]!r}")

    def merged(cls: type[_M], base: _M | None) -> _M:
        values = base.model_dump(exclude_unset=True) if base is not None else {}
        values.update({k: v for k, v in kw.items() if k in cls.model_fields and v is not None})
        return _config.validated(cls, values, "option")

    return merged(RequestDefaults, defaults), merged(JobOptions, options)


def plan_items(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    provider: BatchProvider,
    resolved: _config.Resolved,
    staging_dir: Path,
    **more: Any,
) -> tuple[Plan, str | None]:
    """Read, validate and chunk ``items`` for ``provider`` with ``resolved``'s defaults; the plan,
    and the input's path if it is a file. ``more`` goes to :func:`~.planner.plan_job`."""
    if isinstance(items, (str, Path)):
        src_path: str | None = str(items)
        # a job whose model came from the input runs each OpenAI line on its own body.model
        keep = resolved.sources.get("model") == _config.MODEL_FROM_INPUT
        stream: Iterator[tuple[BatchItem, tuple[str | None, int | None]]] = (
            (it, (src_path, n)) for it, n in read_numbered_items(items, keep_model=keep)
        )
    else:
        src_path = None
        stream = ((it, ("<items>", n)) for n, it in enumerate(coerce_items(items), start=1))
    plan = plan_job(
        stream,
        provider=provider,
        model=resolved.model,
        staging_dir=staging_dir,
        defaults=resolved.defaults,
        system_prompt=resolved.system_prompt,
        chunk_size=resolved.chunk_size,
        **more,
    )
    return plan, src_path


def submit(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    defaults: RequestDefaults | None = None,
    options: JobOptions | None = None,
    profile: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    sandbox: Any = None,
    start: bool = True,
    **keywords: Unpack[SubmitKeywords],
) -> Job:
    """Plan and start a job. ``items`` is a JSONL path or an iterable of items/dicts/prompts.

    ``defaults`` are the request parameters items lack (:class:`~polybatch.config.RequestDefaults`:
    system prompt, max_tokens, temperature, ...), ``options`` how the job runs
    (:class:`~polybatch.config.JobOptions`: chunk size, concurrency, retry rounds, budget, ...);
    both may be given field by field as keywords instead (``max_tokens=256, retry_failed=1``).
    Unset fields come from the environment, then the profile. ``model`` (``"provider:model"``)
    wins over ``defaults.model``.

    The same input, model and options give the same job id: submitting again resumes that job
    (``if_exists="new"`` starts a fresh one, ``"refuse"`` raises JobExistsError naming it;
    ``name`` names the job, for ``Job.load`` and the CLI). ``retry_failed`` rounds resubmit the requests that
    expired, were cancelled or failed with a transient error. ``sandbox`` is a running
    ``SandboxServer`` to point the provider at. Nothing is submitted if any item is invalid.
    With ``start=False`` the job is planned and recorded only; ``wait()`` or ``step()`` sends it.
    """
    if sandbox is not None and not hasattr(sandbox, "url"):
        raise ConfigError(
            f"sandbox={sandbox!r}: pass a running polybatch.sandbox.SandboxServer "
            "(with SandboxServer(SandboxEngine()) as server: submit(..., sandbox=server))"
        )
    request, opts = request_and_options(defaults, options, keywords)
    resolved = _config.resolve(
        model=model,
        profile=profile,
        defaults=request,
        limits=opts,
        provider_settings=dict(provider_settings or {}),
        fallback_model=input_model(items),
    )
    settings = dict(resolved.provider_settings)
    # the queue limit is the runner's, not the adapter's: recorded with the job's options
    queue_limit = queue.job_limit(resolved.max_enqueued_tokens, settings)
    settings.pop(queue.QUEUE_LIMIT_KEY, None)
    try:
        cls = get_registry().provider_class(resolved.provider)
    except UnknownProviderError as exc:
        source = resolved.sources.get("model", "")
        if source.startswith("profile ") and resolved.config_file:
            # the model came from a file: say which key of which file to fix
            raise UnknownProviderError(
                f"{resolved.config_file}: key 'profiles.{resolved.profile}.model': {exc}"
            ) from None
        if source.startswith("env "):
            raise UnknownProviderError(f"{source.removeprefix('env ')}: {exc}") from None
        raise
    # where the sandbox listens is not part of the job's identity: its port changes per run
    pointed = pointing_settings(cls, sandbox) if sandbox is not None else {}
    settings.update(pointed)
    if api_key:
        settings["api_key"] = api_key
    if base_url:
        settings["base_url"] = base_url
    if opts.completion_window:
        settings["completion_window"] = opts.completion_window  # preflight checks it
    provider = make_provider(resolved.provider, settings)
    provider.preflight()

    ledger = open_ledger(opts.home)
    ledger.require_writable()  # before planning writes its staging files there
    public = public_settings(settings)
    estimator = _Estimating(provider)
    plan, src_path = plan_items(
        items,
        provider,
        resolved,
        jobs_dir(ledger),
        identity=job_identity(public, pointed, sandbox),
        observe=estimator.add,
    )
    try:
        # one owner: while another live process records or steps this job, this one records and
        # sends nothing (JobBusyError); the lease is held from the check to the first step
        with lease.owning(ledger, plan.job_id):
            job = _record(
                plan, ledger, provider, cls, resolved, opts, estimator, public, src_path, sandbox
            )
            if queue_limit is not None and job._row.state == "planned":
                job._row.options["max_enqueued_tokens"] = queue_limit
                ledger.update_job(job.id, options=job._row.options)
            remember(job.id, provider)
            if start and job._row.state == "planned":
                job.step()
    except BaseException:
        plan.discard()  # what was not moved into the job's directory
        raise
    return job


def _record(
    plan: Plan,
    ledger: Ledger,
    provider: BatchProvider,
    cls: type[BatchProvider],
    resolved: _config.Resolved,
    opts: JobOptions,
    estimator: _Estimating,
    public: dict[str, Any],
    src_path: str | None,
    sandbox: Any,
) -> Job:
    """The job ``plan`` becomes: the one already recorded (resumed), or a new one recorded now.
    Called with the lease on ``plan.job_id`` held."""
    job_id = plan.job_id
    existing = ledger.get_job(job_id)
    if_exists = opts.if_exists or ("new" if opts.new else "resume")
    if existing is not None and if_exists == "refuse":
        plan.discard()
        named = f" ({existing.options['name']})" if existing.options.get("name") else ""
        raise JobExistsError(
            f"this input already ran as job {job_id}{named}, {existing.state}; "
            "resume it with --if-exists resume or start another with --if-exists new",
            job_id=job_id,
        )
    if existing is not None and if_exists == "resume":
        plan.discard()
        log.info("job %s exists: resuming it", job_id)
        # a name or delete_outputs given now applies to the resumed job too
        given = {"name": opts.name, "delete_outputs": opts.delete_outputs or None}
        changes = {k: v for k, v in given.items() if v and existing.options.get(k) != v}
        if changes:
            ledger.update_job(job_id, options={**existing.options, **changes})
            existing = ledger.get_job(job_id) or existing
        return Job(existing, ledger, provider)
    try:
        estimate = estimator.result(resolved.max_cost)
    except BaseException:
        plan.discard()
        raise
    if existing is not None:  # a new job for the same input: the id is salted with a count
        n = 2
        while ledger.get_job(f"{plan.job_id}-{n}") is not None:
            n += 1
        job_id = f"{plan.job_id}-{n}"

    now = time.time()
    recorded: dict[str, Any] = {
        "provider_settings": public,
        "max_in_flight": (
            resolved.max_in_flight or cls.default_max_in_flight or DEFAULT_MAX_IN_FLIGHT
        ),
        "chunk_size": resolved.chunk_size,
        "keep_files": opts.keep_files,
        "retry_failed": opts.retry_failed,
        "max_cost": str(resolved.max_cost) if resolved.max_cost is not None else None,
        "estimate": _estimate_dict(estimate),
        "profile": resolved.profile,
        "sandbox": sandbox is not None,
    }
    if opts.name:
        recorded["name"] = opts.name
    if opts.delete_outputs:
        recorded["delete_outputs"] = True
    if sandbox is not None:
        recorded.update(sandbox_options(sandbox, ledger))
    if opts.poll_min is not None:
        recorded["poll_min"] = opts.poll_min
    if opts.poll_max is not None:
        recorded["poll_max"] = opts.poll_max
    if opts.queue_backoff is not None:
        recorded["queue_backoff"] = opts.queue_backoff
    row = JobRow(
        id=job_id,
        created_at=now,
        updated_at=now,
        provider=resolved.provider,
        model=resolved.model,
        state="planned",
        n_items=plan.n_items,
        input_path=src_path,
        results_path=None,
        options=recorded,
    )
    files = JobFiles.of(ledger, row)
    private_dir(files.dir)
    plan.staging_path.replace(files.items_path)
    for i, wire in enumerate(plan.wire_files):
        wire.replace(files.wire_path(i))
    chunks = planned_rows(job_id, plan.chunks, round_=0, items_file=ITEMS_FILE, first_idx=0)
    ledger.add_job(row, chunks)
    return Job(row, ledger, provider)


class _Estimating:
    """Feeds the cost estimator during planning; a missing price is kept, not raised, until
    the budget is checked (without a budget, a job on an unpriced model still runs)."""

    def __init__(self, provider: BatchProvider) -> None:
        self.problem: PricingError | None = None
        self.estimator: Estimator | None = None
        try:
            self.estimator = estimator(provider)
        except PricingError as exc:
            self.problem = exc

    def add(self, item: BatchItem, model: str) -> None:
        if self.estimator is None or self.problem is not None:
            return
        try:
            self.estimator.add(item, model)
        except PricingError as exc:
            self.problem = exc

    def result(self, max_cost: Decimal | None) -> Estimate | None:
        """The estimate, after enforcing the budget (BudgetExceededError, nothing submitted)."""
        if self.problem is not None or self.estimator is None:
            check_budget(None, max_cost, why_missing=str(self.problem))
            # a typo'd model is said as such (with the nearest name); an unpriced one plainly
            typo = isinstance(self.problem, UnknownModelError)
            warnings.warn(
                str(self.problem) if typo else f"no estimate: {self.problem}", stacklevel=3
            )
            return None
        estimate = self.estimator.result()
        check_budget(estimate, max_cost)
        return estimate


def _estimate_dict(e: Estimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "low": str(e.low),
        "high": str(e.high),
        "input_tokens": e.input_tokens,
        "max_output_tokens": e.max_output_tokens,
        "method": e.method,
    }


async def asubmit(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    **kwargs: Any,
) -> Job:
    """:func:`submit` on the caller's event loop: ``job = await polybatch.asubmit(...)``.

    Planning (reading and validating the input, local disk work) runs in a worker thread; the
    uploads and batch creation go through the adapter's async client on this loop.
    """
    start = kwargs.pop("start", True)
    job = await asyncio.to_thread(submit, items, model, start=False, **kwargs)
    if start and job.status().state == "planned":
        try:
            await job.astep()
        finally:
            await job._release_client()
    return job


async def arun(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    timeout: float | None = None,
    **kwargs: Any,
) -> ResultList:
    """:func:`run` for async code: ``results = await polybatch.arun([...], "openai:gpt-4o-mini")``."""
    poll = {
        k: kwargs.pop(k) for k in ("poll_min", "poll_max", "on_result", "on_error") if k in kwargs
    }
    job = await asubmit(items, model, **kwargs)
    return await job.await_results(timeout=timeout, **poll)


def run(
    items: Iterable[BatchItem | dict[str, Any] | str] | str | Path,
    model: str | None = None,
    *,
    progress: bool = False,
    timeout: float | None = None,
    on_result: ResultCallback | None = None,
    on_error: ResultCallback | None = None,
    **kwargs: Any,
) -> ResultList:
    """Submit, wait and return every result, in input order.

    The results are a :class:`~polybatch.jobs.files.ResultList`: a sequence (iterate it, index
    it, ``len``) read from the job's results file as it is used, so a job of any size fits.
    ``on_result`` / ``on_error`` get each final result as its chunk lands (``Job.wait``).
    """
    job = submit(items, model, **kwargs)
    job.wait(progress=progress, timeout=timeout, on_result=on_result, on_error=on_error)
    return job.result_list()
