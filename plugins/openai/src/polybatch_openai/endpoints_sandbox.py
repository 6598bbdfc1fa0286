"""How the OpenAI sandbox answers Responses, legacy completions and moderations requests.

The replies come from the engine's SyntheticModel, in the response shapes of
:mod:`.endpoints`: a Responses reply honours ``instructions``, ``max_output_tokens`` and
``text.format`` (schema-valid JSON), reports automatic prompt caching and, when ``reasoning`` is
asked for, reasoning tokens inside ``output_tokens``; a moderation scores each input from its
text (deterministic; words of violence score high, so tests can see a flagged input).
"""

from __future__ import annotations

import hashlib

from polybatch.sandbox.api import BatchRequest, Outcome
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine
from polybatch.tokens import count_tokens
from polybatch.wire import short_hash

from . import endpoints

#: reasoning tokens a synthetic reply spends per effort level (none spends nothing)
REASONING_TOKENS = {"none": 0, "minimal": 8, "low": 16, "medium": 32, "high": 64, "xhigh": 128}
#: words that make a synthetic moderation flag ``violence``
VIOLENT_WORDS = ("kill", "attack", "murder")


def answer(
    engine: SandboxEngine,
    request: endpoints.EndpointRequest,
    req: BatchRequest,
    batch: SandboxBatch,
    namespace: str,
    *,
    broken_json: bool = False,
) -> Outcome:
    """The 200 answer to one valid request of a Responses, completions or moderations batch."""
    ident = short_hash(batch.id, req.index)
    created = int(batch.started_at)
    if isinstance(request, endpoints.ModerationRequest):
        scores = [moderation_scores(text) for text in request.inputs]
        body = endpoints.moderation_response(
            moderation_id=ident, model=request.model, scores=scores, images=request.images
        )
        return Outcome(200, body, (0, 0))
    if isinstance(request, endpoints.CompletionRequest):
        reply = engine.model.chat(
            model=request.model,
            messages=[("user", request.prompt)],
            max_tokens=request.max_tokens,
            stop=request.stop,
        )
        prompt = count_tokens(request.prompt)
        body = endpoints.text_completion(request, ident, created, reply, prompt)
        return Outcome(200, body, (prompt, reply.completion_tokens * request.n))
    fmt = request.text_format or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    reply = engine.model.chat(
        model=request.model,
        messages=request.transcript,
        max_tokens=request.max_tokens,
        json_schema=dict(schema) if isinstance(schema, dict) else None,
        json_object=fmt.get("type") == "json_object",
        invalid_json=broken_json and schema is not None,
    )
    cached = engine.model.cache.automatic(
        (namespace, request.model), request.transcript, length=reply.prompt_tokens
    )
    effort = str((request.reasoning or {}).get("effort") or "medium")
    reasoning = REASONING_TOKENS.get(effort, 0) if request.reasoning is not None else 0
    output = reply.completion_tokens + reasoning
    body = endpoints.response_object(
        response_id=ident,
        created=created,
        request=request,
        text=reply.text,
        finish_reason=reply.finish_reason,
        input_tokens=reply.prompt_tokens,
        output_tokens=output,
        cached_tokens=cached.read,
        reasoning_tokens=reasoning,
    )
    return Outcome(200, body, (reply.prompt_tokens, output))


def moderation_scores(text: str) -> dict[str, float]:
    """Synthetic category scores of one input: small and stable per text, ``violence`` high when
    the text holds a violent word."""
    digest = hashlib.sha256(text.encode()).digest()
    scores = {
        category: round(digest[i] / 2550, 6)  # at most 0.1
        for i, category in enumerate(endpoints.MODERATION_CATEGORIES)
    }
    if any(word in text.lower() for word in VIOLENT_WORDS):
        scores["violence"] = 0.93
    return scores
