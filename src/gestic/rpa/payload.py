"""What a work item's payload may be: a JSON object of bounded size, strict JSON (no NaN).

The queue stores payloads as JSON in the ledger database, robots exchange them through the
broker as JSON, and the service desk exports them: a value that is not an object (a list, a
bare string), a float that JSON cannot carry (NaN, Infinity; Python's json writes them, no other
reader accepts them), or a payload that should have been a file of the item is refused with a
clear error when the item is created or its payload saved, never stored half-valid.
"""

from __future__ import annotations

import json
from typing import Any, Final

from gestic.errors import PayloadError

#: The largest payload, as compact UTF-8 JSON. Larger data belongs in a file of the item.
MAX_PAYLOAD_BYTES: Final = 100_000


def check_payload(payload: Any, *, what: str = "work item payload") -> dict[str, Any]:
    """`payload` itself when it is a valid payload (None is the empty object), else PayloadError."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise PayloadError(
            f"{what} must be a JSON object (name: value pairs), not {type(payload).__name__}"
        )
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or Infinity, or a circular reference
        raise PayloadError(
            f"{what} is not strict JSON: {exc} (NaN and Infinity are not JSON)"
        ) from exc
    except TypeError as exc:  # a value JSON has no type for (a date, bytes, a set)
        raise PayloadError(f"{what} is not JSON: {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{what} is {size} bytes of JSON, more than the {MAX_PAYLOAD_BYTES} allowed: "
            "attach large data to the item as a file"
        )
    return payload
