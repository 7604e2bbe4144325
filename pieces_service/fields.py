"""Marshmallow fields shared by the query and body schemas."""
from __future__ import annotations

import marshmallow as ma

MAX_TEXT_LENGTH = 1000
MAX_CODE_LENGTH = 255
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ma.ValidationError("Must not contain NUL characters.")


def Text(max_length: int = MAX_TEXT_LENGTH, **kwargs) -> ma.fields.String:
    """A string PostgreSQL can store: bounded length, no NUL bytes."""
    return ma.fields.String(
        validate=[ma.validate.Length(max=max_length), _no_nul], **kwargs
    )


def Code(**kwargs) -> ma.fields.String:
    """A required identifying code (piece_id, project code…): 1–255 characters."""
    return ma.fields.String(
        required=True,
        validate=[ma.validate.Length(min=1, max=MAX_CODE_LENGTH), _no_nul],
        **kwargs,
    )


def Int32(**kwargs) -> ma.fields.Integer:
    """An integer that fits PostgreSQL's `integer` column."""
    return ma.fields.Integer(
        strict=True, validate=ma.validate.Range(INT32_MIN, INT32_MAX), **kwargs
    )
