"""v1 public-key directory (``/users/me/keys``, ``/users/{id}/keys``) over real HTTP."""

from __future__ import annotations

import base64

import pytest

from tests.api_v1.conftest import PASSWORD
from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

# Most tests share one server (``v1``) and run in the module's event loop, each with
# accounts of its own; those that need the first account (the administrator), count what
# the whole server holds, or need settings of their own, start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
OTHER = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()  # padded spelling


async def test_publish_read_replace_withdraw(v1):
    ann = await v1.account("ann")
    bob = await v1.account("bob")
    assert (await bob.client.get(f"/users/{ann.id}/keys")).json() == {"user_id": ann.id,
                                                                      "keys": []}
    first = await ann.client.put("/users/me/keys", json={"public_key": KEY})
    assert first.status_code == 200, first.text
    assert first.json()["algorithm"] == "x25519" and first.json()["public_key"] == KEY
    again = await ann.client.put("/users/me/keys", json={"public_key": KEY + "=",
                                                         "algorithm": "x25519"})
    assert again.json()["updated_at"] == first.json()["updated_at"]  # same key: unchanged
    seen = (await bob.client.get(f"/users/{ann.id}/keys")).json()["keys"]
    assert [(k["algorithm"], k["public_key"]) for k in seen] == [("x25519", KEY)]

    replaced = await ann.client.put("/users/me/keys", json={"public_key": OTHER})
    assert replaced.json()["public_key"] == OTHER.rstrip("=")
    for body, field in [({"public_key": "short"}, "public_key"),
                        ({"public_key": "!!!!"}, "public_key"),
                        ({"public_key": KEY, "algorithm": "rsa"}, "algorithm"),
                        ({"public_key": KEY, "extra": 1}, "extra")]:
        bad = await ann.client.put("/users/me/keys", json=body)
        assert bad.status_code == 422 and field in bad.text, body
    assert (await bob.client.get("/users/00000000-0000-4000-8000-000000000000/keys")
            ).status_code == 404
    assert (await v1.anon.get(f"/users/{ann.id}/keys")).status_code == 401

    gone = await ann.client.delete("/users/me/keys")
    assert gone.json()["removed"] == 1
    assert (await bob.client.get(f"/users/{ann.id}/keys")).json()["keys"] == []
    await ann.client.put("/users/me/keys", json={"public_key": KEY})
    assert (await ann.client.request("DELETE", "/users/me", json={"password": PASSWORD})
            ).status_code == 200
    assert (await bob.client.get(f"/users/{ann.id}/keys")).status_code == 404


async def test_small_order_keys_are_refused(v1):
    """Review finding: any 32 bytes were published, including the small-order points of
    X25519 (all-zero, one, ...). Key agreement with one yields the all-zero secret, which
    clients refuse with an error: whoever published one broke every sender's encryption
    to them (a 500 in the Security Toolkit)."""
    ann = await v1.account("ann")
    for raw in (bytes(32), b"\x01" + bytes(31), bytes.fromhex(
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            bytes.fromhex("ec" + "ff" * 30 + "7f")):
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        bad = await ann.client.put("/users/me/keys", json={"public_key": text})
        assert bad.status_code == 422 and "small order" in bad.text, raw.hex()
    assert (await ann.client.put("/users/me/keys", json={"public_key": KEY})).status_code == 200
