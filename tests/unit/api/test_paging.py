from __future__ import annotations

import pytest

from airflow_revcent.api.paging import CustomersPage, WindowReader
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentAPIError, RevCentDataError, RevCentWindowUnsettledError

WINDOW = Window(1000, 2000)


def cust(n: int, created: int = 1500) -> dict:
    return {"id": f"{n:020d}", "created_date_unix": created}


def page(number: int, total: int, customers: list[dict], size: int = 2) -> CustomersPage:
    return CustomersPage(number, total, -(-total // size), customers)


def test_pages_after_the_first_are_planned_from_total_pages():
    reader = WindowReader(WINDOW)
    assert reader.start() == [1]
    outcome = reader.on_page(1, page(1, 5, [cust(1), cust(2)]))
    assert outcome.next_pages == [2, 3]
    assert [c["id"] for c in outcome.customers] == [cust(1)["id"], cust(2)["id"]]
    # Pages arrive out of order.
    assert reader.on_page(3, page(3, 5, [cust(5)])).customers == [cust(5)]
    assert not reader.done
    last = reader.on_page(2, page(2, 5, [cust(3), cust(4)]))
    assert last.next_pages == [] and reader.done
    assert reader.stats.records == 5 and reader.stats.requests == 3 and reader.stats.passes == 1


def test_empty_window_is_done_after_one_request():
    reader = WindowReader(WINDOW)
    reader.start()
    outcome = reader.on_page(1, CustomersPage(1, 0, 0, []))
    assert outcome.next_pages == [] and reader.done


def test_duplicates_across_pages_are_emitted_once():
    reader = WindowReader(WINDOW)
    reader.start()
    reader.on_page(1, page(1, 4, [cust(1), cust(2)]))
    outcome = reader.on_page(2, page(2, 4, [cust(2), cust(3)]))
    assert outcome.customers == [cust(3)]


def test_guard_second_customers_count_but_are_not_emitted():
    reader = WindowReader(WINDOW)
    reader.start()
    outcome = reader.on_page(1, page(1, 3, [cust(1, 999), cust(2, 1000), cust(3, 2000)], size=3))
    assert outcome.customers == [cust(2, 1000)]
    assert reader.done  # three ids seen for a total of three


def test_shifted_total_triggers_a_second_pass_that_emits_only_new_customers():
    reader = WindowReader(WINDOW)
    reader.start()
    reader.on_page(1, page(1, 4, [cust(1), cust(2)]))
    # A customer was created inside the window: pages shift, total moves to 5.
    outcome = reader.on_page(2, page(2, 5, [cust(2), cust(3)]))
    assert outcome.next_pages == [1] and not reader.done and reader.stats.passes == 2
    outcome = reader.on_page(1, page(1, 5, [cust(9), cust(1)]))
    assert outcome.customers == [cust(9)] and outcome.next_pages == [2, 3]
    reader.on_page(2, page(2, 5, [cust(2), cust(3)]))
    outcome = reader.on_page(3, page(3, 5, [cust(4)]))
    assert outcome.customers == [cust(4)] and reader.done


def test_a_window_that_never_settles_fails_after_max_passes():
    reader = WindowReader(WINDOW, max_passes=2)
    reader.start()
    reader.on_page(1, page(1, 4, [cust(1), cust(2)]))
    reader.on_page(2, page(2, 6, [cust(3), cust(4)]))
    reader.on_page(1, page(1, 6, [cust(1), cust(2)]))
    reader.on_page(2, page(2, 6, [cust(3), cust(4)]))
    with pytest.raises(RevCentWindowUnsettledError, match="did not settle after 2 passes"):
        reader.on_page(3, page(3, 8, [cust(5), cust(6)]))


def test_stable_total_but_missing_customers_probes_page_zero():
    reader = WindowReader(WINDOW)
    reader.start()
    # A 0-based API: page 1 is the second page; page 2 is past the end.
    assert reader.on_page(1, page(1, 3, [cust(3)])).next_pages == [2]
    assert reader.on_page(2, page(2, 3, [])).next_pages == [0]
    outcome = reader.on_page(0, CustomersPage(0, 3, 2, [cust(1), cust(2)]))
    assert outcome.customers == [cust(1), cust(2)] and reader.done and reader.first_page == 0


def test_refused_page_zero_probe_falls_back_to_another_pass():
    reader = WindowReader(WINDOW)
    reader.start()
    reader.on_page(1, page(1, 3, [cust(1), cust(2)]))
    assert reader.on_page(2, page(2, 3, [])).next_pages == [0]
    assert reader.on_probe_failed() == [1]


def test_wrong_current_page_is_an_api_error():
    reader = WindowReader(WINDOW)
    reader.start()
    with pytest.raises(RevCentAPIError, match="asked for page 1 but the API answered current_page=2"):
        reader.on_page(1, page(2, 3, []))


@pytest.mark.parametrize("bad", [{"created_date_unix": 1500}, {"id": "x" * 20, "created_date_unix": "1500"},
                                 {"id": None, "created_date_unix": 1500}, "not an object"])
def test_customers_without_usable_id_fail_or_are_skipped(bad):
    reader = WindowReader(WINDOW)
    reader.start()
    with pytest.raises(RevCentDataError, match="page 1, position 0"):
        reader.on_page(1, page(1, 1, [bad]))
    lenient = WindowReader(WINDOW, on_invalid_record="keep")
    lenient.start()
    assert lenient.on_page(1, page(1, 2, [bad, cust(1)])).customers == [cust(1)]
    assert lenient.stats.skipped == 1
    assert lenient.done  # the skipped customer counts toward total_count


def finished_reader(total: int = 2) -> WindowReader:
    reader = WindowReader(WINDOW)
    reader.start()
    reader.on_page(1, page(1, total, [cust(i) for i in range(1, total + 1)], size=total))
    assert reader.done
    return reader


def test_verification_of_an_unchanged_window_costs_one_request():
    reader = finished_reader()
    assert reader.verify() == [1]
    outcome = reader.on_page(1, page(1, 2, [cust(1), cust(2)]))
    assert outcome.customers == [] and outcome.next_pages == [] and reader.verified and reader.done


def test_a_window_that_grew_after_it_was_read_is_read_again_without_repeating_anyone():
    reader = finished_reader()
    reader.verify()
    outcome = reader.on_page(1, page(1, 3, [cust(9), cust(1)]))
    assert outcome.customers == [cust(9)] and outcome.next_pages == [1]
    assert not reader.done and not reader.verified and reader.stats.passes == 2
    reader.on_page(1, page(1, 3, [cust(9), cust(1)]))
    outcome = reader.on_page(2, page(2, 3, [cust(2)]))
    assert outcome.customers == [] and reader.done  # cust(2) was emitted in the first read


def test_a_window_that_keeps_growing_after_it_was_read_fails():
    reader = WindowReader(WINDOW, max_passes=1)
    reader.start()
    reader.on_page(1, page(1, 1, [cust(1)]))
    reader.verify()
    with pytest.raises(RevCentWindowUnsettledError, match="kept changing after it was read"):
        reader.on_page(1, page(1, 2, [cust(1), cust(2)]))


def test_an_api_that_consistently_lists_fewer_customers_than_it_counts_settles_with_a_shortfall():
    reader = WindowReader(WINDOW)
    reader.start()
    reader.on_page(1, page(1, 3, [cust(1), cust(2)], size=3))  # says 3, lists 2
    assert reader.on_probe_failed() == [1]  # page 0 refused: read again
    outcome = reader.on_page(1, page(1, 3, [cust(1), cust(2)], size=3))
    assert outcome.next_pages == [] and reader.done  # nobody new: settled, not "unsettled"
    assert (reader.stats.distinct, reader.stats.total_count) == (2, 3)


def no_totals(number: int, items: list[dict]) -> CustomersPage:
    """A page of an envelope with only current_count, current_page and results."""
    return CustomersPage(number, None, None, items)


def test_without_totals_a_window_is_read_page_after_page_until_a_short_page():
    reader = WindowReader(WINDOW, page_size=2)
    assert reader.start() == [1]
    first = reader.on_page(1, no_totals(1, [cust(1), cust(2)]))
    assert first.next_pages == [2] and not reader.done  # a full page: there may be more
    second = reader.on_page(2, no_totals(2, [cust(3), cust(4)]))
    assert second.next_pages == [3] and not reader.done
    last = reader.on_page(3, no_totals(3, [cust(5)]))
    assert last.next_pages == [] and reader.done  # a short page ends the window
    assert reader.stats.records == 5 and reader.stats.requests == 3 and reader.stats.total_count is None


def test_without_totals_an_empty_page_after_full_ones_ends_the_window():
    reader = WindowReader(WINDOW, page_size=2)
    reader.start()
    assert reader.on_page(1, no_totals(1, [cust(1), cust(2)])).next_pages == [2]
    assert reader.on_page(2, no_totals(2, [])).next_pages == [] and reader.done
    # Verification asks page 1 again: nothing new means the window stays as read.
    assert reader.verify() == [1]
    assert reader.on_page(1, no_totals(1, [cust(1), cust(2)])).customers == [] and reader.verified


def test_the_key_and_creation_fields_come_from_the_resource():
    reader = WindowReader(WINDOW, key_field="uid", created_field="made", item="sales item")
    reader.start()
    outcome = reader.on_page(1, CustomersPage(1, 2, 1, [{"uid": "a", "made": 1500}, {"uid": "b", "made": 3000}]))
    assert [i["uid"] for i in outcome.customers] == ["a"]  # b was created outside the window
    with pytest.raises(RevCentDataError, match=r"the sales item has uid=None and made=1500"):
        WindowReader(WINDOW, key_field="uid", created_field="made", item="sales item").on_page(
            1, CustomersPage(1, 1, 1, [{"id": "x", "made": 1500}]))


def test_an_integer_key_identifies_items_as_a_string_one_does():
    from airflow_revcent.api.paging import CustomersPage

    reader = WindowReader(WINDOW, key_field="number")
    reader.start()
    items = [{"number": n, "created_date_unix": WINDOW.start + n} for n in (1, 2, 2)]
    outcome = reader.on_page(1, CustomersPage(1, 2, 1, items))
    assert [c["number"] for c in outcome.customers] == [1, 2]
