"""The optional filters of a RevCent list operation, validated and encoded as its OpenAPI document says.

:func:`validate_filters` checks a rendered ``filters`` dict against a
:class:`~airflow_revcent.resources.Resource`'s parameters: names, enums, string lengths, list or single
value, deepObject keys. :class:`CustomerFilters` is the customers case, with one argument per filter.

Array filters are ``form`` style with ``explode`` (one repeated key per value);
``metadata_filter`` is ``deepObject`` (``metadata_filter[0][name]=..&metadata_filter[0][value]=..``).
Values are checked before any request, so a typo fails the task with the offending value
instead of a 400 halfway through a backfill.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources.descriptor import FilterParam, Resource, customers_resource

#: A metadata filter value that matches on the name alone.
METADATA_NAME_EXISTS = "METADATA_NAME_EXISTS"
_ID_FILTERS = ("campaign_filter", "customer_group_filter", "product_filter")

#: One validated value: a string, number or boolean, or an object's (key, value) pairs in schema order.
FilterValue = str | int | float | bool | tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Filters:
    """The validated filters of one extraction from any list operation, in the operation's order.

    :param values: each set filter and its values (one value for a filter that is not a list).
    """

    values: tuple[tuple[FilterParam, tuple[FilterValue, ...]], ...] = ()

    def get(self, name: str) -> tuple[FilterValue, ...]:
        """The values of the filter called ``name`` (empty when it is not set).

        :param name: the parameter name.
        """
        return next((values for param, values in self.values if param.name == name), ())

    def to_params(self) -> list[tuple[str, str]]:
        """Encode as query parameters, in each parameter's style."""
        params: list[tuple[str, str]] = []
        for param, values in self.values:
            if param.deep_object:
                for index, value in enumerate(values):
                    prefix = f"{param.name}[{index}]" if param.array else param.name
                    pairs = value if isinstance(value, tuple) else ()
                    params.extend((f"{prefix}[{key}]", item) for key, item in pairs)
            elif param.array and not param.explode:
                params.append((param.name, ",".join(_encode(v) for v in values)))
            else:
                params.extend((param.name, _encode(v)) for v in values)
        return params

    @property
    def active(self) -> bool:
        """Whether any filter is set (then the table holds a subset of the account's items)."""
        return bool(self.values)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view for logs and XCom."""
        out: dict[str, Any] = {}
        for param, values in self.values:
            shown = [dict(v) if isinstance(v, tuple) else v for v in values]
            out[param.name] = shown if param.array else shown[0]
        return out


def _encode(value: FilterValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _accepted(resource: Resource) -> str:
    return "; ".join(f"{f.name} ({f.summary()})" for f in resource.filters) or "no filters"


def validate_filters(resource: Resource, filters: Mapping[str, Any] | None) -> Filters:
    """Check rendered filter values against the operation's parameters, before any request.

    A value of ``None`` (or an empty list) leaves a filter unset. A lone string or object given for a
    list filter is a one-element list, the way a user writes it in a template.

    :param resource: the list resource the filters are for.
    :param filters: parameter name to value(s), e.g. ``{"currency_filter": ["USD"]}``.
    :raises RevCentConfigError: an unknown name or a bad value; the message names it and lists what the
        operation accepts.
    """
    if filters is None:
        filters = {}
    if not isinstance(filters, Mapping):
        raise RevCentConfigError(
            f"filters={filters!r} must be a mapping of parameter name to value(s), e.g. "
            f'{{"{resource.filters[0].name if resource.filters else "name"}": [...]}}. '
            f"{resource.name} ({resource.operation_id}) accepts: {_accepted(resource)}."
        )
    unknown = [name for name in filters if resource.filter(str(name)) is None]
    if unknown:
        raise RevCentConfigError(
            f"{resource.name} ({resource.operation_id}) has no filter {', '.join(map(repr, unknown))}. "
            f"It accepts: {_accepted(resource)}."
        )
    missing = [p.name for p in resource.filters if p.mandatory and filters.get(p.name) in (None, [], (), "")]
    if missing:
        raise RevCentConfigError(
            f"{resource.name} ({resource.operation_id}) requires {', '.join(map(repr, missing))} in filters. "
            f"It accepts: {_accepted(resource)}."
        )
    values = []
    for param in resource.filters:
        checked = _check_param(param, filters.get(param.name))
        if checked:
            values.append((param, checked))
    return Filters(tuple(values))


def _check_param(param: FilterParam, raw: Any) -> tuple[FilterValue, ...]:
    if raw is None:
        return ()
    if not param.array:
        if isinstance(raw, list | tuple | set | frozenset):
            raise RevCentConfigError(
                f"{param.name}={raw!r} takes one value, not a list; it accepts {param.summary()}."
            )
        return (_check_value(param, raw, 0),)
    return tuple(_check_value(param, value, index) for index, value in enumerate(_as_list(raw, param)))


def _as_list(value: Any, param: FilterParam) -> list[Any]:
    if isinstance(value, str | Mapping):
        # A lone string or object is a one-element filter, the way a user writes it in a template.
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise RevCentConfigError(
        f"{param.name}={value!r} must be a list; for example {param.name}=['...']. It accepts {param.summary()}."
    )


def _check_value(param: FilterParam, value: Any, index: int) -> FilterValue:
    if param.type == "object":
        return _check_object(param, value, index)
    if param.type == "string":
        return _check_string(param, value)
    convert = _SCALARS.get(param.type)
    converted = convert(value) if convert is not None and not isinstance(value, list | tuple | Mapping) else None
    if converted is None:
        raise RevCentConfigError(f"{param.name} value {value!r} is not a valid {param.type}; "
                                 f"{param.name} accepts {param.summary()}.")
    return _check_enum(param, converted)


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.lstrip("-").isdigit() else None


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _as_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else ""
    return {"true": True, "false": False}.get(text)


# How a templated value (often rendered to text) becomes the parameter's JSON type; None: it cannot.
_SCALARS: dict[str, Any] = {"integer": _as_integer, "number": _as_number, "boolean": _as_boolean}


def _check_enum(param: FilterParam, value: Any) -> FilterValue:
    if param.enum and value not in param.enum:
        raise RevCentConfigError(
            f"{param.name} value {value!r} is unknown; use any of {', '.join(map(str, param.enum))}."
        )
    checked: FilterValue = value
    return checked


def _check_string(param: FilterParam, value: Any) -> str:
    fixed = param.min_length is not None and param.min_length == param.max_length
    if fixed and "ID" in param.value_description and (not isinstance(value, str) or len(value) != param.min_length):
        raise RevCentConfigError(
            f"{param.name} value {value!r} is not a RevCent id: ids are {param.min_length}-character strings "
            f"(got {len(value) if isinstance(value, str) else type(value).__name__}). Copy the id from RevCent."
        )
    if not isinstance(value, str):
        raise RevCentConfigError(f"{param.name} value {value!r} is a {type(value).__name__}, not a string; "
                                 f"{param.name} accepts {param.summary()}.")
    if param.enum:
        # Matched regardless of case and surrounding spaces, then sent as the document spells it.
        match = [e for e in param.enum if isinstance(e, str) and e.casefold() == value.strip().casefold()]
        if len(match) != 1:
            raise RevCentConfigError(
                f"{param.name} value {value!r} is unknown; use any of {', '.join(map(str, param.enum))}."
            )
        return match[0]
    too_short = param.min_length is not None and len(value) < param.min_length
    too_long = param.max_length is not None and len(value) > param.max_length
    if too_short or too_long:
        raise RevCentConfigError(f"{param.name} value {value!r} has {len(value)} characters; "
                                 f"{param.name} accepts {param.summary()}.")
    return value


def _check_object(param: FilterParam, value: Any, index: int) -> tuple[tuple[str, str], ...]:
    where = f"{param.name}[{index}]" if param.array else param.name
    if not isinstance(value, Mapping):
        example = json.dumps({key: "..." for key in param.properties} or {"name": "..."})
        raise RevCentConfigError(f"{where}={value!r} must be an object like {example}.")
    if not param.additional_properties:
        unknown = set(value) - set(param.properties)
        if unknown:
            raise RevCentConfigError(
                f"{where} has unknown keys {sorted(unknown)}; only {' and '.join(map(repr, param.properties))} "
                "are allowed."
            )
    defaults = dict(param.defaults)
    pairs = []
    for key in (*param.properties, *(k for k in value if k not in param.properties)):
        if key not in value and key in defaults:
            pairs.append((key, defaults[key]))
            continue
        if key not in value and key not in param.required:
            continue
        item = value.get(key)
        if not isinstance(item, str) or not item.strip():
            hint = "".join(f" ({k} may be {v!r}, or left out: the document says it then matches on the "
                           "other keys alone)" for k, v in defaults.items() if k != key)
            raise RevCentConfigError(
                f"{where} has no {key} ({item!r}); every {param.name} item needs a non-empty string {key!r}{hint}."
            )
        pairs.append((key, item))
    return tuple(pairs)


@dataclass(frozen=True)
class MetadataFilter:
    """One metadata name/value pair; ``value`` :data:`METADATA_NAME_EXISTS` matches on the name alone."""

    name: str
    value: str = METADATA_NAME_EXISTS


def _plain_metadata(value: Any) -> Any:
    # MetadataFilter objects are validated like the {"name", "value"} mappings a template renders to.
    if isinstance(value, MetadataFilter):
        return [{"name": value.name, "value": value.value}]
    if isinstance(value, Iterable) and not isinstance(value, str | Mapping):
        return [{"name": v.name, "value": v.value} if isinstance(v, MetadataFilter) else v for v in value]
    return value


@dataclass(frozen=True)
class CustomerFilters:
    """The validated filters of one customers extraction (the customers case of :class:`Filters`).

    :param campaign_filter: campaign ids (20 characters each).
    :param customer_group_filter: customer group ids (20 characters each).
    :param product_filter: product ids (20 characters each).
    :param status_filter: any of enabled, disabled, blocked, fraud, chargeback.
    :param metadata_filter: name/value pairs; all must match.
    """

    campaign_filter: tuple[str, ...] = ()
    customer_group_filter: tuple[str, ...] = ()
    product_filter: tuple[str, ...] = ()
    status_filter: tuple[str, ...] = ()
    metadata_filter: tuple[MetadataFilter, ...] = field(default=())

    @classmethod
    def build(
        cls,
        *,
        campaign_filter: Any = None,
        customer_group_filter: Any = None,
        product_filter: Any = None,
        status_filter: Any = None,
        metadata_filter: Any = None,
    ) -> CustomerFilters:
        """Validate raw (possibly template-rendered) filter values against GetCustomers' parameters.

        :param metadata_filter: a list of ``{"name": ..., "value": ...}`` mappings; ``value`` may be
            omitted to mean :data:`METADATA_NAME_EXISTS`.
        """
        checked = validate_filters(customers_resource(), {
            "campaign_filter": campaign_filter,
            "customer_group_filter": customer_group_filter,
            "product_filter": product_filter,
            "status_filter": status_filter,
            "metadata_filter": _plain_metadata(metadata_filter),
        })
        return cls(
            **{name: tuple(str(v) for v in checked.get(name)) for name in (*_ID_FILTERS, "status_filter")},
            metadata_filter=tuple(MetadataFilter(**dict(v)) for v in checked.get("metadata_filter")
                                  if isinstance(v, tuple)),
        )

    def to_params(self) -> list[tuple[str, str]]:
        """Encode as query parameters, in the spec's styles."""
        params: list[tuple[str, str]] = []
        for name in _ID_FILTERS:
            params.extend((name, value) for value in getattr(self, name))
        params.extend(("status_filter", value) for value in self.status_filter)
        for index, item in enumerate(self.metadata_filter):
            params.append((f"metadata_filter[{index}][name]", item.name))
            params.append((f"metadata_filter[{index}][value]", item.value))
        return params

    @property
    def active(self) -> bool:
        """Whether any filter is set (then the table holds a subset of the account's customers)."""
        return bool(self.to_params())

    def describe(self) -> dict[str, Sequence[Any]]:
        """A JSON-friendly view for logs and XCom."""
        out: dict[str, Sequence[Any]] = {}
        for name in (*_ID_FILTERS, "status_filter"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        if self.metadata_filter:
            out["metadata_filter"] = [{"name": m.name, "value": m.value} for m in self.metadata_filter]
        return out
