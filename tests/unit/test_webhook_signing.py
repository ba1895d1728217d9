"""Webhook signatures as Standard Webhooks defines them, checked by our verifier and by the
README's receiver; and which targets a webhook may have."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from consensus_engine.webhooks.signing import InvalidSignature, new_secret, sign, verify
from consensus_engine.webhooks.targets import RefusedTarget, check_target

README = Path(__file__).resolve().parents[2] / "README.md"
BODY = b'{"type":"run.completed","data":{"run_id":"r"}}'


def test_a_signature_verifies_with_its_secret_only() -> None:
    secret, now = new_secret(), int(time.time())
    header = sign(secret, "msg_1", now, BODY)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", header)
    verify(secret, "msg_1", now, BODY, header, now=now)
    verify(secret, "msg_1", now, BODY, f"v1,bm90IHRoaXM= {header}", now=now)  # rotation
    for wrong in (
        (new_secret(), "msg_1", now, BODY),
        (secret, "msg_2", now, BODY),
        (secret, "msg_1", now + 1, BODY),
        (secret, "msg_1", now, BODY + b" "),
    ):
        with pytest.raises(InvalidSignature):
            verify(*wrong, header, now=now)
    with pytest.raises(InvalidSignature, match="too far"):
        verify(secret, "msg_1", now, BODY, header, now=now + 301)


def test_a_known_vector() -> None:
    """The Standard Webhooks specification's own example."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    header = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_readme_receiver_accepts_our_signature_and_refuses_a_forged_one() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README receiver", "exec"), namespace)
    secret, now = new_secret(), int(time.time())
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "msg_x", now, BODY),
    }
    namespace["verify"](secret, headers, BODY)
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verify"](new_secret(), headers, BODY)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://0.0.0.0/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://169.254.169.254/x",
        "http://192.168.1.10/x",
        "http://100.64.0.1/x",
        "http://224.0.0.1/x",
    ],
)
def test_internal_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(RefusedTarget, match="internal address"):
        check_target(url, allow_private=False)
    check_target(url, allow_private=True)


def test_a_public_address_is_a_target() -> None:
    check_target("https://93.184.216.34/hook", allow_private=False)
