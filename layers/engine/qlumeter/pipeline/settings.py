"""Each function's environment, parsed once at cold start; a missing setting names itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .ingest import PART_BYTES, SPLIT_BYTES


class SettingsError(RuntimeError):
    """The environment lacks a setting, or has a bad one."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        try:
            return cls.model_validate(dict(env))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"{cls.__name__}: {problems}") from None


class TableSettings(_Settings):
    OBSERVATIONS_TABLE: str = Field(min_length=1)
    FILES_TABLE: str = Field(min_length=1)
    USAGE_TABLE: str = Field(min_length=1)
    SUBSCRIPTIONS_TABLE: str = Field(min_length=1)

    def tables(self) -> dict[str, str]:
        return {
            "observations": self.OBSERVATIONS_TABLE,
            "files": self.FILES_TABLE,
            "usage": self.USAGE_TABLE,
            "subscriptions": self.SUBSCRIPTIONS_TABLE,
        }


class IngestSettings(TableSettings):
    IDEMPOTENCY_TABLE: str = Field(min_length=1)
    TOPIC_ARN: str = Field(min_length=1)
    METER_QUEUE_URL: str = Field(min_length=1)  # late data: a request for a metering run
    INGEST_QUEUE_URL: str = Field(min_length=1)  # where the parts of a large object go
    SPLIT_BYTES: int = Field(default=SPLIT_BYTES, ge=1)
    PART_BYTES: int = Field(default=PART_BYTES, ge=1)


class MeterSettings(TableSettings):
    TOPIC_ARN: str = Field(min_length=1)
    STATE_BUCKET: str = Field(min_length=1)
    METER_QUEUE_URL: str = Field(min_length=1)  # a run that goes on asks for its next part
    RESERVE_SECONDS: int = Field(default=60, ge=1)  # kept for saving a run's progress


class DispatchSettings(TableSettings):
    METER_QUEUE_URL: str = Field(min_length=1)


class AdminSettings(TableSettings):
    pass


class LedgerSettings(TableSettings):
    pass
