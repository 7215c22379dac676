"""Small input validators the services share: each raises InvalidInput naming the field."""

from __future__ import annotations

from typing import Any

from buyersclub.errors import InvalidInput


def clean_text(value: Any, field: str, label: str, max_length: int, *, required: bool) -> str | None:
    """Trimmed text; ``None`` for an empty optional value; InvalidInput naming the field."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"Enter {label} as text.", field=field)
    value = value.strip()
    if not value:
        if required:
            raise InvalidInput(f"Enter {label}.", field=field)
        return None
    if len(value) > max_length:
        raise InvalidInput(f"Keep {label} to {max_length} characters or fewer.", field=field)
    return value
