"""A page is stored in parts; every order lands in exactly one part, and only the last moves the cursor."""

import pytest

from wheel.marketplaces.base import OrderPage
from wheel.services.pulls import _parts


@pytest.mark.parametrize("n", [0, 1, 249, 250, 251, 500, 501, 2000])
def test_every_order_in_one_part_and_the_cursor_with_the_last(n):
    page = OrderPage(orders=list(range(n)), cancellations=["c"], failures=["f"], cursor={"token": "t"}, calls=3)
    parts = list(_parts(page, size=250))
    assert [o for part, _ in parts for o in part.orders] == list(range(n))
    assert all(len(part.orders) <= 250 for part, _ in parts)
    *early, (last, is_last) = parts
    assert is_last and not any(flag for _, flag in early)
    assert (last.cursor, last.calls, last.cancellations, last.failures) == ({"token": "t"}, 3, ["c"], ["f"])
    assert all(part.cursor is None and not part.cancellations for part, _ in early)
