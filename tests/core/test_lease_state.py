"""The one lease rule (``leases.lease_state``) and the claim check built on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.owners import dead_owner
from warlock_ai.core.errors import LeaseHeldError, LeaseLostError
from warlock_ai.core.runs.leases import (
    LeaseClaim,
    LeaseState,
    check_claim,
    is_stale,
    lease_state,
    new_owner_id,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER, EARLIER = NOW + timedelta(minutes=5), NOW - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("owner", "expires", "status", "state"),
    [
        (None, None, "running", LeaseState.NONE),  # never taken
        ("", LATER, "running", LeaseState.NONE),
        ("elsewhere:1:aa", LATER, "running", LeaseState.LIVE),  # another host: trusted
        ("elsewhere:1:aa", EARLIER, "running", LeaseState.EXPIRED),
        ("elsewhere:1:aa", None, "running", LeaseState.EXPIRED),
        ("elsewhere:1:aa", LATER, "completed", LeaseState.NONE),  # a finished run holds nothing
        ("elsewhere:1:aa", EARLIER, "failed", LeaseState.NONE),
    ],
)
def test_lease_state(owner, expires, status, state):
    assert lease_state(owner, expires, NOW, status) is state
    assert is_stale(status, owner, expires, NOW) is (
        status == "running" and state != LeaseState.LIVE
    )


def test_a_live_process_of_this_host_holds_and_a_dead_one_does_not():
    assert lease_state(new_owner_id(), LATER, NOW) is LeaseState.LIVE
    dead = dead_owner()
    assert lease_state(dead, LATER, NOW) is LeaseState.DEAD
    assert lease_state(dead, EARLIER, NOW) is LeaseState.EXPIRED  # expiry is decided first
    assert is_stale("running", dead, LATER, NOW)
    assert LeaseState.LIVE.blocks and not LeaseState.DEAD.blocks


def test_check_claim_applies_the_same_rule():
    run = "r-1"
    acquire = LeaseClaim("me:1:aa", "acquire")
    check_claim(run, acquire, None, None, NOW)  # a new run
    check_claim(run, acquire, "me:1:aa", LATER, NOW)  # mine already
    check_claim(run, acquire, "elsewhere:1:aa", EARLIER, NOW)  # expired: taken over
    check_claim(run, acquire, dead_owner(), LATER, NOW)  # its holder died
    with pytest.raises(LeaseHeldError, match="elsewhere:1:aa"):
        check_claim(run, acquire, "elsewhere:1:aa", LATER, NOW)
    renew = LeaseClaim("me:1:aa", "renew")
    check_claim(run, renew, "me:1:aa", EARLIER, NOW)  # still mine, even expired
    for holder in (None, "elsewhere:1:aa"):
        with pytest.raises(LeaseLostError):
            check_claim(run, renew, holder, LATER, NOW)
