"""Feature value types: Arrow types with one canonical spelling for definitions and YAML."""

from __future__ import annotations

import pyarrow as pa

from featureledger.errors import DefinitionError

#: the canonical timestamp type every time column is stored as
TIMESTAMP = pa.timestamp("us", tz="UTC")

_ALIASES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": TIMESTAMP,
}
_NAMES = {str(t): n for n, t in _ALIASES.items()}
_NAMES["float"] = "float32"
_NAMES["double"] = "float64"
_NAMES[str(TIMESTAMP)] = "timestamp"

#: widening casts that lose nothing; anything else is a retype
_WIDER: dict[pa.DataType, tuple[pa.DataType, ...]] = {
    pa.int8(): (pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()),
    pa.int16(): (pa.int32(), pa.int64(), pa.float32(), pa.float64()),
    pa.int32(): (pa.int64(), pa.float64()),
    pa.uint8(): (pa.uint16(), pa.uint32(), pa.uint64(), pa.int16(), pa.int32(), pa.int64()),
    pa.uint16(): (pa.uint32(), pa.uint64(), pa.int32(), pa.int64()),
    pa.uint32(): (pa.uint64(), pa.int64()),
    pa.float32(): (pa.float64(),),
}


def parse_type(spec: str | pa.DataType) -> pa.DataType:
    """Turn ``"float64"``, ``"list<float32>"`` or an Arrow type into a supported Arrow type."""
    if isinstance(spec, pa.DataType):
        dtype = _normalize(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
        if text.startswith("list<") and text.endswith(">"):
            dtype = pa.list_(parse_type(text[5:-1]))
        elif text in _ALIASES:
            dtype = _ALIASES[text]
        elif text in _NAMES:
            dtype = _ALIASES[_NAMES[text]]
        else:
            raise DefinitionError(
                f"unknown type {spec!r}; use one of {sorted(_ALIASES)} or 'list<float32>' etc."
            )
    else:
        raise DefinitionError(f"a type must be a string or a pyarrow.DataType, got {spec!r}")
    _check_supported(dtype)
    return dtype


def type_name(dtype: pa.DataType) -> str:
    """The canonical spelling of a supported type (inverse of `parse_type`)."""
    if pa.types.is_list(dtype):
        return f"list<{type_name(dtype.value_type)}>"
    return _NAMES.get(str(dtype), str(dtype))


def is_widening(old: pa.DataType, new: pa.DataType) -> bool:
    """True when every value of ``old`` is exactly representable in ``new``."""
    if old == new:
        return True
    if pa.types.is_list(old) and pa.types.is_list(new):
        return is_widening(old.value_type, new.value_type)
    return new in _WIDER.get(old, ())


def _normalize(dtype: pa.DataType) -> pa.DataType:
    # Storage has one spelling per logical type, so large/view variants map to the plain one.
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_timestamp(dtype):
        return TIMESTAMP
    if pa.types.is_date(dtype):
        return pa.date32()
    if pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(_normalize(dtype.value_type))
    if pa.types.is_list(dtype):
        return pa.list_(_normalize(dtype.value_type))
    return dtype


def _check_supported(dtype: pa.DataType) -> None:
    if pa.types.is_list(dtype):
        if pa.types.is_list(dtype.value_type):
            raise DefinitionError(f"nested lists ({dtype}) are not supported as feature types")
        _check_supported(dtype.value_type)
        return
    if str(dtype) not in _NAMES:
        raise DefinitionError(
            f"type {dtype} is not supported as a feature type; supported: "
            f"{sorted(_ALIASES)} and lists of them"
        )
