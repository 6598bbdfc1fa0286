"""The core's Standard Webhooks verifier (``polybatch.webhook_hooks``), for SDKs without one:
signed by the sandboxes' signer, checked here with the spec's rules."""

from __future__ import annotations

import time

import pytest

from polybatch.errors import WebhookRejectedError
from polybatch.sandbox.webhooks import new_secret, signed_headers
from polybatch.webhook_hooks import TOLERANCE_SECONDS, verify_standard_webhook

SECRET = new_secret()
BODY = b'{"type": "batch.succeeded", "data": {"id": "b1"}}'


def test_a_genuine_delivery_returns_its_body_whatever_the_header_case() -> None:
    headers = signed_headers(SECRET, "wh_1", int(time.time()), BODY)
    upper = {k.title(): v for k, v in headers.items()}
    assert verify_standard_webhook(upper, BODY, SECRET) == {
        "type": "batch.succeeded",
        "data": {"id": "b1"},
    }


def test_any_of_several_signatures_may_match_as_during_a_rotation() -> None:
    headers = signed_headers(SECRET, "wh_1", int(time.time()), BODY)
    old = signed_headers(new_secret(), "wh_1", int(time.time()), BODY)["webhook-signature"]
    headers["webhook-signature"] = f"{old} v2,xyz {headers['webhook-signature']}"
    assert verify_standard_webhook(headers, BODY, SECRET)["data"] == {"id": "b1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": ""}, "missing"),
        ({"webhook-timestamp": "soon"}, "not an integer"),
        ({"webhook-timestamp": str(int(time.time()) - TOLERANCE_SECONDS - 5)}, "5 minutes"),
        ({"webhook-id": "wh_other"}, "no webhook-signature matches"),
    ],
)
def test_a_bad_delivery_is_rejected_naming_why(change: dict[str, str], message: str) -> None:
    headers = {**signed_headers(SECRET, "wh_1", int(time.time()), BODY), **change}
    with pytest.raises(WebhookRejectedError, match=message):
        verify_standard_webhook(headers, BODY, SECRET)


def test_a_tampered_body_or_another_secret_is_rejected() -> None:
    headers = signed_headers(SECRET, "wh_1", int(time.time()), BODY)
    with pytest.raises(WebhookRejectedError, match="no webhook-signature matches"):
        verify_standard_webhook(headers, BODY + b" ", SECRET)
    with pytest.raises(WebhookRejectedError, match="no webhook-signature matches"):
        verify_standard_webhook(headers, BODY, new_secret())
    with pytest.raises(WebhookRejectedError, match="whsec_<base64>"):
        verify_standard_webhook(headers, BODY, "whsec_!!!")


def test_a_signed_body_that_is_not_json_is_rejected() -> None:
    headers = signed_headers(SECRET, "wh_1", int(time.time()), b"nope")
    with pytest.raises(WebhookRejectedError, match="not JSON"):
        verify_standard_webhook(headers, b"nope", SECRET)
