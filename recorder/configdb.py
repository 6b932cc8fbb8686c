"""config.db itself: the connection its tables share, their base model, and the key/value settings.

The tables live beside what they hold (recorder/config.py: cameras; recorder/accounts.py:
users and tokens); recorder/config.py lists every one in CONFIG_MODELS and opens the file.
"""

from peewee import CharField, Model, SqliteDatabase, TextField

db = SqliteDatabase(None)


class BaseModel(Model):
    class Meta:
        database = db


class Setting(BaseModel):
    """Key/value settings of the box."""

    key = CharField(primary_key=True)
    value = TextField()

    @classmethod
    def read(cls, key: str, default: str | None = None) -> str | None:
        row = cls.get_or_none(cls.key == key)
        return row.value if row else default

    @classmethod
    def write(cls, key: str, value: str) -> None:
        cls.insert(key=key, value=value).on_conflict_replace().execute()
