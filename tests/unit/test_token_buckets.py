"""The per-token issuance budget: token buckets on a hand-moved clock, and their settings."""

from __future__ import annotations

from uuid import uuid4

import pytest

from api.http.bodies import MAX_BATCH_ITEMS
from api.http.ratelimit import TokenBuckets
from domain.adapters.settings import (
    BURST_ENV,
    DEFAULT_ISSUANCE_BURST,
    DEFAULT_ISSUANCE_RATE,
    RATE_ENV,
    IssuanceLimit,
    Settings,
)


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_gets_its_burst_at_once_then_the_rate() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(IssuanceLimit(rate=2, burst=3), clock=ticks)
    token = uuid4()
    assert [buckets.take(token, 1) for _ in range(3)] == [None, None, None]
    refused = buckets.take(token, 1)
    assert refused is not None
    assert refused.wait == pytest.approx(0.5)
    assert refused.first
    again = buckets.take(token, 1)
    assert again is not None
    assert not again.first  # one episode of throttling, one warning
    assert buckets.take(uuid4(), 1) is None  # another token has its own bucket
    ticks.now += 0.5
    assert buckets.take(token, 1) is None
    ticks.now += 60
    *admitted, refused_again = [buckets.take(token, 1) for _ in range(4)]
    assert admitted == [None, None, None]  # refilled up to the burst, not beyond
    assert refused_again is not None
    assert refused_again.first  # a new episode after admitted requests


def test_a_batch_larger_than_the_burst_is_admitted_from_a_full_bucket_and_repaid() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(IssuanceLimit(rate=1, burst=3), clock=ticks)
    token = uuid4()
    assert buckets.take(token, 5) is None
    refused = buckets.take(token, 1)
    assert refused is not None
    assert refused.wait == pytest.approx(3.0)  # 2 in debt, then 1 to spend


def test_a_batch_waits_until_the_bucket_holds_its_cost() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(IssuanceLimit(rate=10, burst=100), clock=ticks)
    token = uuid4()
    assert buckets.take(token, 80) is None
    refused = buckets.take(token, 50)
    assert refused is not None
    assert refused.wait == pytest.approx(3.0)
    ticks.now += 3
    assert buckets.take(token, 50) is None


def test_a_rate_of_zero_switches_the_limit_off() -> None:
    buckets = TokenBuckets(Settings.from_env({RATE_ENV: "0", BURST_ENV: "1"}).issuance)
    token = uuid4()
    assert all(buckets.take(token, 1000) is None for _ in range(100))


def test_limits_come_from_the_environment_with_generous_defaults() -> None:
    assert Settings.from_env({}).issuance == IssuanceLimit(
        DEFAULT_ISSUANCE_RATE, DEFAULT_ISSUANCE_BURST
    )
    assert Settings.from_env({RATE_ENV: "0.5", BURST_ENV: "20"}).issuance == IssuanceLimit(0.5, 20)


def test_the_default_burst_admits_one_full_batch() -> None:
    assert IssuanceLimit().burst == MAX_BATCH_ITEMS


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({RATE_ENV: "-1"}, RATE_ENV),
        ({RATE_ENV: "fast"}, RATE_ENV),
        ({RATE_ENV: "inf"}, RATE_ENV),
        ({RATE_ENV: "nan"}, RATE_ENV),
        ({BURST_ENV: "0"}, BURST_ENV),
        ({BURST_ENV: "2.5"}, BURST_ENV),
    ],
)
def test_a_bad_limit_setting_is_refused_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Settings.from_env(environ)
