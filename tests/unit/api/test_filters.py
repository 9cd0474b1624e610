from __future__ import annotations

import pytest

from airflow_revcent.api.filters import CustomerFilters, MetadataFilter
from airflow_revcent.exceptions import RevCentConfigError

CAMPAIGN = "C" * 20
GROUP = "G" * 20
PRODUCT = "P" * 20


def test_no_filters_encode_to_nothing():
    filters = CustomerFilters.build()
    assert filters.to_params() == [] and not filters.active


def test_arrays_are_repeated_keys_and_metadata_is_deep_object():
    filters = CustomerFilters.build(
        campaign_filter=[CAMPAIGN, "D" * 20],
        customer_group_filter=GROUP,
        product_filter=(PRODUCT,),
        status_filter=["Enabled", "fraud"],
        metadata_filter=[{"name": "source", "value": "facebook"}, {"name": "vip"}],
    )
    assert filters.to_params() == [
        ("campaign_filter", CAMPAIGN),
        ("campaign_filter", "D" * 20),
        ("customer_group_filter", GROUP),
        ("product_filter", PRODUCT),
        ("status_filter", "enabled"),
        ("status_filter", "fraud"),
        ("metadata_filter[0][name]", "source"),
        ("metadata_filter[0][value]", "facebook"),
        ("metadata_filter[1][name]", "vip"),
        ("metadata_filter[1][value]", "METADATA_NAME_EXISTS"),
    ]
    assert filters.describe()["metadata_filter"][1] == {"name": "vip", "value": "METADATA_NAME_EXISTS"}


def test_encoded_query_string_matches_the_spec_styles():
    from urllib.parse import urlencode

    filters = CustomerFilters.build(status_filter=["blocked", "chargeback"],
                                    metadata_filter=[MetadataFilter("a b", "x&y")])
    assert urlencode(filters.to_params()) == (
        "status_filter=blocked&status_filter=chargeback"
        "&metadata_filter%5B0%5D%5Bname%5D=a+b&metadata_filter%5B0%5D%5Bvalue%5D=x%26y"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"campaign_filter": ["short"]}, r"campaign_filter value 'short' is not a RevCent id.*20"),
        ({"product_filter": [12345678901234567890]}, "product_filter value 12345678901234567890"),
        ({"customer_group_filter": ["X" * 21]}, "customer_group_filter"),
        ({"status_filter": ["active"]}, "status_filter value 'active' is unknown"),
        ({"metadata_filter": [{"value": "x"}]}, r"metadata_filter\[0\] has no name"),
        ({"metadata_filter": [{"name": " "}]}, r"metadata_filter\[0\] has no name"),
        ({"metadata_filter": [{"name": "a", "value": ""}]}, "non-empty"),
        ({"metadata_filter": [{"name": "a", "val": "x"}]}, "unknown keys"),
        ({"metadata_filter": ["source=facebook"]}, "must be an object"),
        ({"status_filter": 5}, "must be a list"),
    ],
)
def test_bad_filters_name_the_value(kwargs, message):
    with pytest.raises(RevCentConfigError, match=message):
        CustomerFilters.build(**kwargs)
