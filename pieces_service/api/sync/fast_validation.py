"""A fast path for validating sync items, derived from their marshmallow schemas.

Marshmallow alone, on a 60-field piece, would cap sync far below its target (BENCHMARKS.md,
lever 5). The items of a real batch are almost always valid, so `FastItemLoader` checks
them with plain type/length/range tests compiled from the schema's own fields; the moment
an item is not plainly valid it returns None, and the caller lets marshmallow load the whole
body, so error messages (and every edge of the rules) remain marshmallow's. The schema stays
the single source of truth: a field or validator this module does not understand disables
the fast path for that schema rather than being skipped.
"""
from __future__ import annotations

import functools
import re
import uuid
from typing import Any, Callable

import marshmallow as ma

from ..fields import storable_text

_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}\Z")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

Check = Callable[[Any], tuple[bool, Any]]


@functools.lru_cache(maxsize=8192)
def _parse_uuid(text: str) -> uuid.UUID:
    """A batch repeats its tenant and parent GUIDs on every item: parse each once."""
    return uuid.UUID(text)


def _bounds(field: ma.fields.Field, kind: type) -> tuple[Any, Any] | None:
    """(min, max) from the field's validators, or None if one is not understood."""
    low = high = None
    for validator in field.validators:
        if kind is str and isinstance(validator, ma.validate.Length) and validator.equal is None:
            low, high = validator.min, validator.max
        elif kind is int and isinstance(validator, ma.validate.Range) \
                and validator.min_inclusive and validator.max_inclusive:
            low, high = validator.min, validator.max
        elif kind is str and validator is storable_text:
            continue
        else:
            return None
    return low, high


def _check_for(field: ma.fields.Field) -> Check | None:
    """A function value -> (plainly valid?, loaded value) for one field, or None."""
    if isinstance(field, ma.fields.UUID) and not field.validators:
        def check_uuid(value):
            if isinstance(value, str) and _UUID_TEXT.match(value):
                return True, _parse_uuid(value)
            return False, None
        return check_uuid
    if type(field) is ma.fields.String:
        bounds = _bounds(field, str)
        if bounds is None:
            return None
        low, high = bounds
        low = 0 if low is None else low

        def check_str(value):
            if isinstance(value, str) and low <= len(value) \
                    and (high is None or len(value) <= high) and not _BAD_TEXT.search(value):
                return True, value
            return False, None
        return check_str
    if type(field) is ma.fields.Integer and field.strict:
        bounds = _bounds(field, int)
        if bounds is None:
            return None
        low, high = bounds

        def check_int(value):
            if type(value) is int and (low is None or low <= value) \
                    and (high is None or value <= high):
                return True, value
            return False, None
        return check_int
    return None


class FastItemLoader:
    """Loads plainly valid items of one schema; returns None for anything else."""

    def __init__(self, schema: ma.Schema):
        self.plan: list[tuple[str, Check, bool, bool, Any]] | None = []
        for name, field in schema.fields.items():
            check = _check_for(field)
            if check is None or field.data_key not in (None, name):
                self.plan = None
                return
            default = field.load_default
            if default is ma.missing and not field.required:
                self.plan = None  # an absent optional field would be left out, not None
                return
            self.plan.append((name, check, field.required, field.allow_none, default))
        self.required = frozenset(name for name, _, required, *_ in self.plan if required)
        # Loading starts from every default and converts only the keys an item carries
        # (a piece has about 60 fields, and an item need not send them all).
        self.defaults = {name: default for name, _, required, _, default in self.plan
                         if not required}
        self.fields = {name: (check, allow_none) for name, check, _, allow_none, _ in self.plan}

    def load(self, item: Any) -> dict | None:
        """The loaded item, or None when marshmallow must decide."""
        if (self.plan is None or not isinstance(item, dict) or not self.fields.keys() >= item.keys()
                or not self.required.issubset(item)):
            return None
        loaded = dict(self.defaults)
        fields = self.fields
        for name, value in item.items():
            check, allow_none = fields[name]
            if value is None:
                if not allow_none:
                    return None
                loaded[name] = None
                continue
            ok, converted = check(value)
            if not ok:
                return None
            loaded[name] = converted
        return loaded

    def load_many(self, items: Any) -> list[dict] | None:
        """All items loaded, or None if any one needs marshmallow."""
        if not isinstance(items, list):
            return None
        loaded = []
        for item in items:
            one = self.load(item)
            if one is None:
                return None
            loaded.append(one)
        return loaded
