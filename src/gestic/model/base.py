"""What every section of the model's schema shares: frozen models that refuse unknown keys,
names, time zones."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,14}$")]
"""Host, site and service names: lowercase, start with a letter, at most 15 characters."""


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
"""An IANA time zone name (America/Bogota)."""
