"""The optional filters of ``GET /v2/customers``, validated and encoded as the spec says.

Array filters are ``form`` style with ``explode`` (one repeated key per value);
``metadata_filter`` is ``deepObject`` (``metadata_filter[0][name]=..&metadata_filter[0][value]=..``).
Values are checked before any request, so a typo fails the task with the offending value
instead of a 400 halfway through a backfill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError

STATUS_VALUES = ("enabled", "disabled", "blocked", "fraud", "chargeback")
#: A metadata filter value that matches on the name alone.
METADATA_NAME_EXISTS = "METADATA_NAME_EXISTS"
ID_LENGTH = 20
_ID_FILTERS = ("campaign_filter", "customer_group_filter", "product_filter")


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        # A lone string or object is a one-element filter, the way a user writes it in a template.
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise RevCentConfigError(f"{name}={value!r} must be a list; for example {name}=['...'].")


@dataclass(frozen=True)
class MetadataFilter:
    """One metadata name/value pair; ``value`` :data:`METADATA_NAME_EXISTS` matches on the name alone."""

    name: str
    value: str = METADATA_NAME_EXISTS


@dataclass(frozen=True)
class CustomerFilters:
    """The validated filters of one extraction.

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
        """Validate raw (possibly template-rendered) filter values.

        :param metadata_filter: a list of ``{"name": ..., "value": ...}`` mappings; ``value`` may be
            omitted to mean :data:`METADATA_NAME_EXISTS`.
        """
        ids = {
            name: tuple(_check_id(v, name) for v in _as_list(raw, name))
            for name, raw in (
                ("campaign_filter", campaign_filter),
                ("customer_group_filter", customer_group_filter),
                ("product_filter", product_filter),
            )
        }
        statuses = tuple(_check_status(v) for v in _as_list(status_filter, "status_filter"))
        metadata = tuple(_check_metadata(i, v) for i, v in enumerate(_as_list(metadata_filter, "metadata_filter")))
        return cls(**ids, status_filter=statuses, metadata_filter=metadata)

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


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) != ID_LENGTH:
        raise RevCentConfigError(
            f"{name} value {value!r} is not a RevCent id: ids are {ID_LENGTH}-character strings "
            f"(got {len(value) if isinstance(value, str) else type(value).__name__}). Copy the id from RevCent."
        )
    return value


def _check_status(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in STATUS_VALUES:
        raise RevCentConfigError(
            f"status_filter value {value!r} is unknown; use any of {', '.join(STATUS_VALUES)}."
        )
    return value.strip().lower()


def _check_metadata(index: int, value: Any) -> MetadataFilter:
    if isinstance(value, MetadataFilter):
        item = value
    elif isinstance(value, Mapping):
        unknown = set(value) - {"name", "value"}
        if unknown:
            raise RevCentConfigError(
                f"metadata_filter[{index}] has unknown keys {sorted(unknown)}; only 'name' and 'value' are allowed."
            )
        item = MetadataFilter(
            name=value.get("name"),  # type: ignore[arg-type]  # checked below, naming it
            value=value.get("value", METADATA_NAME_EXISTS),
        )
    else:
        raise RevCentConfigError(
            f"metadata_filter[{index}]={value!r} must be an object like "
            '{"name": "source", "value": "facebook"}.'
        )
    if not isinstance(item.name, str) or not item.name.strip():
        raise RevCentConfigError(
            f"metadata_filter[{index}] has no name ({item.name!r}); every metadata filter needs a "
            "non-empty 'name' (use value 'METADATA_NAME_EXISTS' to match on the name alone)."
        )
    if not isinstance(item.value, str) or not item.value:
        raise RevCentConfigError(
            f"metadata_filter[{index}] (name {item.name!r}) has value {item.value!r}; give a non-empty "
            "string, or 'METADATA_NAME_EXISTS' to match on the name alone."
        )
    return item
