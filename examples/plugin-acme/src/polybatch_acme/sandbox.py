"""Acme's emulated API: the compatible family's routes serving Acme's preset, plus its rule."""

from __future__ import annotations

from polybatch.sandbox import SandboxBatch
from polybatch.sandbox.api import BatchRequest, Outcome
from polybatch.wire import WireError
from polybatch_openai.sandbox import CompatibleApi

from .provider import plain_text


class AcmeApi(CompatibleApi):
    """OpenAI's Files, Batches and Models routes with the preset's purpose, words and limits.

    What no preset field says is a method override: a request that is not plain text is
    answered with a 400 (an error line), by the rule the adapter validates with.
    """

    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        try:
            plain_text(req.body)
        except WireError as exc:
            return Outcome(400, self.error_body(400, exc.message, code=exc.code, param=exc.param))
        return super().run(req, batch)
