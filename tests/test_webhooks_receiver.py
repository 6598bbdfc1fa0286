"""The webhook receiver's core (issue #19 item 4) without any vendor SDK: what it answers for
providers that send no webhooks, the ledger's seen-ids table (also on a ledger made before it
existed), the webhook fault decisions and the Standard Webhooks signing of the sandbox. The signed
path end to end is in plugins/openai/tests/test_openai_webhooks.py (it needs the openai SDK)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
from pathlib import Path

from starlette.testclient import TestClient

from polybatch.config import WebhookSettings
from polybatch.jobs import hooks
from polybatch.jobs.ledger import open_ledger
from polybatch.sandbox import Faults
from polybatch.sandbox.faults import FaultInjector
from polybatch.sandbox.webhooks import new_secret, signed_headers
from polybatch.webhooks import app


def test_a_provider_that_sends_no_webhooks_gets_404_and_nothing_is_recorded(
    polybatch_home: Path,
) -> None:
    client = TestClient(app(settings=WebhookSettings(enabled=True)))
    for name in ("fake", "nobody"):
        resp = client.post(f"/webhooks/{name}", content=b"{}")
        assert resp.status_code == 404
        assert name in resp.json()["error"]
    rows = open_ledger()._conn().execute("SELECT COUNT(*) FROM webhooks_seen").fetchone()
    assert rows[0] == 0


def test_a_webhook_id_is_acted_on_once(polybatch_home: Path) -> None:
    ledger = open_ledger()
    assert hooks.remember_delivery(ledger, "wh_1", "openai")
    assert not hooks.remember_delivery(ledger, "wh_1", "openai")
    assert hooks.remember_delivery(ledger, "wh_2", "openai")


def test_an_older_ledger_gets_the_seen_ids_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    open_ledger(tmp_path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE webhooks_seen")  # as a 0.2 ledger was
    db.commit()
    db.close()
    ledger = open_ledger(tmp_path)
    assert hooks.remember_delivery(ledger, "wh_1", "openai")


def test_webhook_faults_parse_and_decide_reproducibly() -> None:
    faults = Faults.parse("seed=2,hook_lost=0.5,hook_dup=1,hook_late=1,hook_late_s=3,hook_forged=1")
    assert Faults.parse(faults.to_spec()) == faults
    plans = [FaultInjector(faults).webhook("openai", n) for n in range(1, 41)]
    assert plans == [FaultInjector(faults).webhook("openai", n) for n in range(1, 41)]
    assert 5 < sum(p.lost for p in plans) < 35
    assert all(p.copies == 2 and p.delay == 3.0 and p.forged for p in plans)
    assert not any(FaultInjector(Faults()).webhook("openai", n).lost for n in range(1, 41))


def test_the_sandbox_signs_the_standard_webhooks_way() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"batch.completed"}'
    headers = signed_headers(secret, "wh_abc", 1700000000, body)
    assert headers["webhook-id"] == "wh_abc" and headers["webhook-timestamp"] == "1700000000"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, b"wh_abc.1700000000." + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
