"""API keys and the per-key rate limit, without a server: the rules the API's safety rests on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from consensus_engine.api.app import create_app
from consensus_engine.api.auth import DEV_TENANT, KeyConfigError, KeyRing, digest, new_key
from consensus_engine.api.limits import RateLimiter
from consensus_engine.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test sees only the settings it passes (no .env, no inherited variables)."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


class FakeClock:
    """A clock the test moves by hand, so refill is exact and nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- keys ---------------------------------------------------------------------------------


def test_new_keys_are_prefixed_unique_and_hashed_to_sha256_hex() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(key.startswith("ce_") and len(key) > 40 for key in keys)
    hashed = digest(next(iter(keys)))
    assert len(hashed) == 64 and set(hashed) <= set("0123456789abcdef")
    assert digest("ce_same") == digest("ce_same") != digest("ce_other")


def test_keys_from_the_setting_and_the_file_both_authenticate(tmp_path: Path) -> None:
    acme, globex, initech = new_key(), new_key(), new_key()
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        "# mounted secret: tenant:sha256hex\n"
        "\n"
        f"  globex:{digest(globex).upper()}  \n"
        "   # an indented comment\n"
        f"initech:{digest(initech)}\n",
        encoding="utf-8",
    )
    settings = load_settings(api_keys=f"acme:{digest(acme)}", api_keys_file=keys_file)
    ring = KeyRing.from_settings(settings)

    assert len(ring) == 3
    for tenant, key in (("acme", acme), ("globex", globex), ("initech", initech)):
        principal = ring.authenticate(f"Bearer {key}")
        assert principal is not None
        assert (principal.tenant, principal.key_id) == (tenant, digest(key)[:12])
    assert ring.authenticate(f"bearer   {acme}") is not None  # scheme is case-insensitive


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer ", "Bearer", "Bearer    ", "Basic YWNtZTpzZWNyZXQ=", "ce_raw_key_only"],
)
def test_missing_empty_or_foreign_credentials_do_not_authenticate(header: str | None) -> None:
    ring = KeyRing({digest("ce_known"): "acme"})
    assert ring.authenticate(header) is None
    assert ring.authenticate("Bearer ce_unknown") is None
    assert ring.authenticate("Basic ce_known") is None  # right secret, wrong scheme


def test_open_access_lets_keyless_requests_in_as_the_default_tenant_but_not_bad_keys() -> None:
    ring = KeyRing({digest("ce_known"): "acme"}, open_access=True)
    anonymous = ring.authenticate(None)
    assert anonymous is not None and anonymous.tenant == DEV_TENANT
    known = ring.authenticate("Bearer ce_known")
    assert known is not None and known.tenant == "acme"
    assert ring.authenticate("Bearer ce_wrong") is None
    assert ring.authenticate("Basic eDp5") is None


def test_open_access_comes_from_the_setting_and_is_refused_in_production() -> None:
    ring = KeyRing.from_settings(load_settings(api_auth_disabled=True, env="development"))
    principal = ring.authenticate(None)
    assert principal is not None and principal.tenant == DEV_TENANT
    assert KeyRing.from_settings(load_settings()).authenticate(None) is None

    with pytest.raises(
        SettingsError, match="API_AUTH_DISABLED must not be set with ENV=production"
    ):
        load_settings(api_auth_disabled=True, env="production")


@pytest.mark.parametrize(
    ("entry", "number"),
    [
        ("acme", 2),  # no hash at all
        ("acme:ce_this_is_a_raw_key_pasted_by_mistake_0123456789", 2),  # the key, not its hash
        (f"acme:{'ab' * 31}", 2),  # 62 hex digits
        (f"acme:{'zz' * 32}", 2),  # not hex
        (f"bad tenant:{'ab' * 32}", 2),  # space in the tenant
        (f":{'ab' * 32}", 2),  # no tenant
    ],
)
def test_a_malformed_setting_entry_fails_app_creation_naming_it_without_the_secret(
    entry: str, number: int
) -> None:
    settings = load_settings(api_keys=f"globex:{digest('ce_x')},{entry}")
    with pytest.raises(KeyConfigError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert f"API_KEYS entry {number}" in message
    secret = entry.partition(":")[2]
    assert not secret or secret not in message
    assert digest("ce_x") not in message


def test_a_malformed_file_entry_names_its_line_without_the_secret(tmp_path: Path) -> None:
    pasted = "ce_pasted_raw_key_zyxwvutsrqponmlkjihgfedcba"
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# comment\n\nacme:{digest('ce_a')}\nglobex:{pasted}\n", encoding="utf-8")
    with pytest.raises(KeyConfigError) as raised:
        create_app(load_settings(api_keys_file=keys_file))
    message = str(raised.value)
    assert "API_KEYS_FILE entry 4" in message
    assert pasted not in message and digest("ce_a") not in message


def test_one_key_for_two_tenants_is_refused_but_a_repeat_for_one_tenant_is_not(
    tmp_path: Path,
) -> None:
    shared = digest("ce_shared")
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"acme:{shared}\n\nglobex:{shared}\n", encoding="utf-8")
    with pytest.raises(KeyConfigError) as raised:
        create_app(load_settings(api_keys=f"acme:{shared}", api_keys_file=keys_file))
    message = str(raised.value)
    assert "API_KEYS_FILE entry 3" in message and "'globex'" in message and "'acme'" in message
    assert shared not in message

    ring = KeyRing.from_settings(load_settings(api_keys=f"acme:{shared},acme:{shared.upper()}"))
    principal = ring.authenticate("Bearer ce_shared")
    assert len(ring) == 1 and principal is not None and principal.tenant == "acme"


def test_an_unreadable_keys_file_fails_app_creation(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match=r"API_KEYS_FILE .* cannot be read"):
        create_app(load_settings(api_keys_file=tmp_path / "missing"))


# --- rate limit ---------------------------------------------------------------------------


def test_a_burst_is_capped_then_tokens_refill_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, 3, clock=clock)  # one token a second, three at most

    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(1.0)
    clock.now += 0.25
    assert limiter.acquire("k") == pytest.approx(0.75)  # a refused request costs nothing
    clock.now += 0.75
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == pytest.approx(1.0)


def test_a_long_idle_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, 2, clock=clock)  # two tokens a second, two at most
    limiter.acquire("k")
    limiter.acquire("k")
    clock.now += 3600
    assert [limiter.acquire("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)


def test_each_key_has_its_own_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, 1, clock=clock)
    assert limiter.acquire("acme") == 0.0
    assert limiter.acquire("acme") == pytest.approx(10.0)
    assert limiter.acquire("globex") == 0.0
    clock.now += 5
    assert limiter.acquire("acme") == pytest.approx(5.0)
    assert limiter.acquire("initech") == 0.0


def test_concurrent_acquires_never_hand_out_more_than_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 25, clock=clock)  # refill is negligible while the threads run
    threads, per_thread = 16, 20
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        mine = sum(1 for _ in range(per_thread) if limiter.acquire("shared") == 0.0)
        with lock:
            granted.append(mine)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert len(granted) == threads
    assert sum(granted) == 25
