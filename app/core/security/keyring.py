"""Encryption of data at rest: one keyring of Fernet keys, independent of SECRET_KEY.

DATA_ENCRYPTION_KEYS lists the keys newest first: the newest encrypts, any
listed decrypts. Rotating is adding a key in front, running
`python -m app reencrypt`, then dropping the old key. A column holding
encrypted text is a plain text column listed in ENCRYPTED_COLUMNS, so the
command can find and re-encrypt it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings

REENCRYPT_BATCH_SIZE = 500


class KeyringMissing(Exception):
    """Something is to be encrypted or decrypted, but DATA_ENCRYPTION_KEYS is unset."""

    def __init__(self) -> None:
        super().__init__(
            "DATA_ENCRYPTION_KEYS is unset; generate a key with `python -m app new-encryption-key`"
        )


class UndecryptableValue(Exception):
    """A stored value that none of the configured keys decrypts."""


def new_data_key() -> str:
    return Fernet.generate_key().decode()


class DataKeyring:
    def __init__(self, keys: Sequence[str]) -> None:
        self._newest = Fernet(keys[0]) if keys else None
        self._all = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> DataKeyring:
        return cls([key.get_secret_value() for key in settings.data_encryption_keys])

    @property
    def configured(self) -> bool:
        return self._all is not None

    def require(self) -> None:
        self._keys()

    def _keys(self) -> tuple[Fernet, MultiFernet]:
        if self._newest is None or self._all is None:
            raise KeyringMissing()
        return self._newest, self._all

    def encrypt(self, plaintext: str) -> str:
        newest, _ = self._keys()
        return newest.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        _, every = self._keys()
        try:
            return every.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise UndecryptableValue("no configured data-encryption key decrypts it") from None

    def is_current(self, ciphertext: str) -> bool:
        """Encrypted with the newest key: re-encrypting it would change nothing."""
        newest, _ = self._keys()
        try:
            newest.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, ciphertext: str) -> str:
        """The same plaintext under the newest key."""
        _, every = self._keys()
        try:
            return every.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise UndecryptableValue("no configured data-encryption key decrypts it") from None


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    """A text column holding DataKeyring ciphertext, in a table with a one-column primary key."""

    table: Table
    column: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


# Every column holding encrypted text, for `reencrypt`; a new one is added here.
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = ()


async def reencrypt_columns(
    sessionmaker: async_sessionmaker[AsyncSession],
    keyring: DataKeyring,
    columns: Sequence[EncryptedColumn],
    *,
    batch_size: int = REENCRYPT_BATCH_SIZE,
) -> dict[str, int]:
    """Re-encrypt every stored value not under the newest key; how many changed, by column."""
    keyring.require()
    return {
        column.name: await _reencrypt_column(sessionmaker, keyring, column, batch_size)
        for column in columns
    }


async def _reencrypt_column(
    sessionmaker: async_sessionmaker[AsyncSession],
    keyring: DataKeyring,
    target: EncryptedColumn,
    batch_size: int,
) -> int:
    (key,) = target.table.primary_key.columns
    value = target.table.c[target.column]
    changed = 0
    last = None
    while True:
        query = select(key, value).where(value.is_not(None)).order_by(key).limit(batch_size)
        if last is not None:
            query = query.where(key > last)
        async with sessionmaker() as session:
            rows = (await session.execute(query)).all()
            for row_key, stored in rows:
                if keyring.is_current(stored):
                    continue
                try:
                    fresh = keyring.reencrypt(stored)
                except UndecryptableValue as exc:
                    raise UndecryptableValue(f"{target.name} of row {row_key}: {exc}") from None
                # Unchanged since it was read, or a concurrent write wins.
                result = await session.execute(
                    update(target.table)
                    .where(key == row_key, value == stored)
                    .values({target.column: fresh})
                )
                changed += cast("CursorResult[Any]", result).rowcount
            await session.commit()
        if len(rows) < batch_size:
            return changed
        last = rows[-1][0]
