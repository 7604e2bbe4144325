"""Marshmallow fields shared by the query and body schemas."""
from __future__ import annotations

import re

import marshmallow as ma

from ..catalogue import INT32_MAX, INT32_MIN, MAX_CODE_LENGTH, MAX_TEXT_LENGTH


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(value: str) -> None:
    """PostgreSQL text holds neither NUL nor lone UTF-16 surrogates (JSON allows both)."""
    if "\x00" in value:
        raise ma.ValidationError("Must not contain NUL characters.")
    if _SURROGATE.search(value):
        raise ma.ValidationError("Must be valid Unicode text (no lone surrogates).")


def Text(max_length: int = MAX_TEXT_LENGTH, **kwargs) -> ma.fields.String:
    """A string PostgreSQL can store: bounded length, no NUL bytes or lone surrogates."""
    return ma.fields.String(
        validate=[ma.validate.Length(max=max_length), storable_text], **kwargs
    )


def Code(**kwargs) -> ma.fields.String:
    """A required identifying code (piece_id, project code…): 1–255 characters."""
    return ma.fields.String(
        required=True,
        validate=[ma.validate.Length(min=1, max=MAX_CODE_LENGTH), storable_text],
        **kwargs,
    )


def Int32(**kwargs) -> ma.fields.Integer:
    """An integer that fits PostgreSQL's `integer` column."""
    return ma.fields.Integer(
        strict=True, validate=ma.validate.Range(INT32_MIN, INT32_MAX), **kwargs
    )


class FieldSet(ma.fields.String):
    """`fields=a,b,c`: a choice among a representation's fields (`choices`), loaded as a
    tuple in the representation's own order (so one choice is one response, however it is
    spelled). A name it does not have is a 422 naming it."""

    def __init__(self, choices, **kwargs):
        self.choices = tuple(choices)
        super().__init__(validate=ma.validate.Length(min=1, max=4000), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        names = [name.strip() for name in text.split(",")]
        if "" in names:
            raise ma.ValidationError("Empty field name: list the fields separated by commas, "
                                     "e.g. guid,piece_id.")
        unknown = [name for name in dict.fromkeys(names) if name not in self.choices]
        if unknown:
            raise ma.ValidationError(f"Unknown field{'s' if len(unknown) > 1 else ''}: "
                                     f"{', '.join(unknown)}. Known: {', '.join(self.choices)}.")
        chosen = set(names)
        return tuple(name for name in self.choices if name in chosen)
