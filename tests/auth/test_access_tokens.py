"""The access-token codec remembers tokens that verified, without letting one outlive its expiry."""

from __future__ import annotations

import uuid

import pytest

from app.core.security.tokens import AccessTokenCodec, InvalidAccessToken
from tests.helpers import SettableClock, make_settings


def _codec(clock: SettableClock, **options: int) -> AccessTokenCodec:
    return AccessTokenCodec(make_settings("sqlite+aiosqlite://"), clock=clock, **options)


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    clock = SettableClock()
    clock.stop()
    codec = _codec(clock)
    subject, session = uuid.uuid4(), uuid.uuid4()
    issued = codec.issue(subject=subject, session_id=session, now=clock.now())

    assert codec.decode(issued.token).subject == subject
    clock.advance(issued.expires_in - 1)
    assert codec.decode(issued.token).session_id == session

    clock.advance(1)
    with pytest.raises(InvalidAccessToken):
        codec.decode(issued.token)


def test_a_token_altered_after_a_valid_one_was_remembered_is_refused() -> None:
    clock = SettableClock()
    codec = _codec(clock)
    issued = codec.issue(subject=uuid.uuid4(), session_id=uuid.uuid4(), now=clock.now())
    codec.decode(issued.token)

    header, payload, signature = issued.token.split(".")
    altered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(InvalidAccessToken):
        codec.decode(altered)


def test_the_memory_holds_at_most_its_capacity() -> None:
    clock = SettableClock()
    codec = _codec(clock, capacity=2)
    tokens = [
        codec.issue(subject=uuid.uuid4(), session_id=uuid.uuid4(), now=clock.now()).token
        for _ in range(3)
    ]
    for token in tokens:
        codec.decode(token)

    assert len(codec._verified) == 2
    assert tokens[0] not in codec._verified
