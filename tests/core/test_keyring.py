"""The data-encryption keyring and `reencrypt`: rotation without losing what is stored.

No table holds encrypted data yet, so the mechanism is tested on one defined
here, created in the test database and dropped after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert, select

from app.core.resources import Resources
from app.core.security.keyring import (
    DataKeyring,
    EncryptedColumn,
    KeyringMissing,
    UndecryptableValue,
    new_data_key,
    reencrypt_columns,
)
from tests.conftest import Operator

NOTES = Table(
    "keyring_test_notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("body", Text, nullable=True),
)
COLUMN = EncryptedColumn(NOTES, "body")
PLAINTEXTS = {n: f"note number {n}" for n in range(1, 8)}


@pytest.fixture
async def notes(resources: Resources) -> AsyncIterator[Table]:
    async with resources.engine.begin() as connection:
        await connection.run_sync(NOTES.metadata.create_all)
    yield NOTES
    async with resources.engine.begin() as connection:
        await connection.run_sync(NOTES.metadata.drop_all)


async def _store(resources: Resources, keyring: DataKeyring) -> None:
    rows = [{"id": n, "body": keyring.encrypt(text)} for n, text in PLAINTEXTS.items()]
    async with resources.sessionmaker() as session:
        await session.execute(insert(NOTES), [*rows, {"id": 100, "body": None}])
        await session.commit()


async def _stored(resources: Resources) -> dict[int, str]:
    async with resources.sessionmaker() as session:
        rows = await session.execute(select(NOTES.c.id, NOTES.c.body).where(NOTES.c.id < 100))
        return {row.id: row.body for row in rows}


def test_the_newest_key_encrypts_and_every_listed_key_decrypts() -> None:
    old, new = new_data_key(), new_data_key()
    under_old = DataKeyring([old]).encrypt("secret")
    rotated = DataKeyring([new, old])

    assert rotated.decrypt(under_old) == "secret"
    assert not rotated.is_current(under_old)
    assert rotated.is_current(rotated.encrypt("secret"))
    assert DataKeyring([new]).decrypt(rotated.encrypt("secret")) == "secret"
    with pytest.raises(UndecryptableValue):
        DataKeyring([new]).decrypt(under_old)


def test_an_empty_keyring_refuses_to_encrypt_or_decrypt() -> None:
    keyring = DataKeyring([])
    assert not keyring.configured
    with pytest.raises(KeyringMissing, match="DATA_ENCRYPTION_KEYS is unset"):
        keyring.encrypt("secret")
    with pytest.raises(KeyringMissing):
        keyring.decrypt(Fernet(new_data_key()).encrypt(b"x").decode())


async def test_reencrypt_moves_every_stored_value_to_the_newest_key(
    resources: Resources, notes: Table
) -> None:
    old, new = new_data_key(), new_data_key()
    await _store(resources, DataKeyring([old]))
    rotating = DataKeyring([new, old])

    changed = await reencrypt_columns(resources.sessionmaker, rotating, [COLUMN], batch_size=3)

    assert changed == {"keyring_test_notes.body": len(PLAINTEXTS)}
    # The old key is gone: everything still decrypts with the new one alone.
    only_new = DataKeyring([new])
    stored = await _stored(resources)
    assert {n: only_new.decrypt(body) for n, body in stored.items()} == PLAINTEXTS
    # Run again, nothing is left to do.
    assert await reencrypt_columns(resources.sessionmaker, rotating, [COLUMN]) == {
        "keyring_test_notes.body": 0
    }


async def test_reencrypt_stops_at_a_value_no_key_decrypts_and_names_the_row(
    resources: Resources, notes: Table
) -> None:
    await _store(resources, DataKeyring([new_data_key()]))

    with pytest.raises(UndecryptableValue, match=r"keyring_test_notes\.body of row 1"):
        await reencrypt_columns(resources.sessionmaker, DataKeyring([new_data_key()]), [COLUMN])


async def test_reencrypt_refuses_an_empty_keyring(resources: Resources, notes: Table) -> None:
    with pytest.raises(KeyringMissing):
        await reencrypt_columns(resources.sessionmaker, DataKeyring([]), [COLUMN])


def test_the_app_resources_hold_the_configured_keyring(resources: Resources) -> None:
    # The test settings configure no keys: the keyring is there, and refuses.
    assert isinstance(resources.keyring, DataKeyring)
    assert not resources.keyring.configured


TEST_ENV = {"APP_ENV": "test"}


async def test_the_cli_prints_new_keys_that_the_settings_accept(operator: Operator) -> None:
    secret = await operator("new-secret-key", env=TEST_ENV)
    data = await operator("new-encryption-key", env=TEST_ENV)

    assert secret.returncode == 0
    assert data.returncode == 0
    assert len(secret.stdout.strip()) >= 32
    Fernet(data.stdout.strip())


async def test_reencrypt_without_keys_says_which_setting_is_missing(
    operator: Operator, resources: Resources
) -> None:
    env = {**TEST_ENV, "DATABASE_URL": resources.settings.database_url}
    answer = await operator("reencrypt", env=env)

    assert answer.returncode == 2
    assert "DATA_ENCRYPTION_KEYS is unset" in answer.stderr


async def test_reencrypt_with_keys_runs_over_the_registry(
    operator: Operator, resources: Resources
) -> None:
    env = {
        **TEST_ENV,
        "DATABASE_URL": resources.settings.database_url,
        "DATA_ENCRYPTION_KEYS": f"{new_data_key()},{new_data_key()}",
    }
    answer = await operator("reencrypt", env=env)

    assert answer.returncode == 0, answer.stderr
    assert "nothing to re-encrypt" in answer.stdout
