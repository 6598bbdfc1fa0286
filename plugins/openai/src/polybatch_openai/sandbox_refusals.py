"""What the emulated OpenAI batch API refuses as the real one does (issue #16 item 5).

- an unknown model: the request's line in the error file carries a 404 with code
  ``model_not_found`` (one of the batch error codes the docs list; the message is OpenAI's
  usual ``The model `X` does not exist or you do not have access to it.``);
- a chat request to an embeddings model: a 404 ``This is not a chat model ...`` line, and an
  embeddings request to a chat model a 400 line (both messages UNVERIFIED beyond user reports);
- a ``completion_window`` the API does not take: the create answers 400 ``invalid_value``.

Which models are known is the core sandbox's decision (:mod:`polybatch.sandbox.models`); the
window rule is :func:`polybatch.batches.completion_window_problem`, the one polybatch's own
check before submitting uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polybatch.batches import completion_window_problem
from polybatch.sandbox.api import Outcome
from polybatch.sandbox.models import is_embedding_model

from . import codec

if TYPE_CHECKING:
    from starlette.responses import Response

    from .sandbox import OpenAIApi


def model_refusal(api: OpenAIApi, parsed: Any) -> Outcome | None:
    """The error line's outcome for a request the model cannot serve, or None (any endpoint's
    request names its model; only chat and embeddings are checked for the kind of model)."""
    model = str(parsed.model)
    if not api.knows_model(model):
        message = f"The model `{model}` does not exist or you do not have access to it."
        return _refused(api, 404, message, code="model_not_found")
    if not isinstance(parsed, codec.ChatRequest | codec.EmbeddingRequest):
        return None
    embedding = isinstance(parsed, codec.EmbeddingRequest)
    if embedding == is_embedding_model(model):
        return None
    if embedding:
        return _refused(api, 400, f"The model `{model}` does not support embeddings.")
    message = (
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
        "Did you mean to use v1/completions?"
    )
    return _refused(api, 404, message)


def _refused(api: OpenAIApi, status: int, message: str, *, code: str | None = None) -> Outcome:
    body = codec.error_body(
        api.engine.echo_key(message), type="invalid_request_error", code=code, param="model"
    )
    return Outcome(status, body)


def window_refusal(api: OpenAIApi, window: str) -> Response | None:
    """The create's 400 for a completion window outside ``api.completion_windows``, or None."""
    if completion_window_problem(window, api.completion_windows) is None:
        return None
    shown = ", ".join(repr(w) for w in api.completion_windows)
    return api.error(
        400,
        f"Invalid value for 'completion_window': {window!r}. Supported values are: {shown}.",
        param="completion_window",
        code="invalid_value",
    )
