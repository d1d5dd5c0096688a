"""`wheelctl orders retry` maps a failed order again from the one record kept with it
(`Unmappable.raw`, or the page's raw record): for each marketplace, the record a pull keeps maps
back to the order the pull mapped, and a record still wrong says why. (Amazon's is run end to end
in tests/integration/test_order_recovery.py.)"""

from __future__ import annotations

from tests.unit.test_flipkart_orders import details, item, shipment
from tests.unit.test_tatacliq_orders import SAMPLE, WHAT
from wheel.db.models import Channel
from wheel.marketplaces.flipkart import orders as flipkart
from wheel.marketplaces.tatacliq import orders as tatacliq
from wheel.services.order_recovery import REMAP


def test_a_tata_cliq_record_maps_back_to_its_order_and_a_broken_one_says_why():
    page = tatacliq.read_page("orders", "UT", SAMPLE, WHAT)
    [order] = page.orders
    channel = Channel(id="UT", marketplace="tatacliq", options={})
    again = REMAP["tatacliq"](channel, order.order_id, page.raw[order.order_id])
    assert again.orders == [order] and again.failures == []

    broken = page.raw[order.order_id].replace("<Pincode>600001</Pincode>", "", 1)
    [failure] = REMAP["tatacliq"](channel, order.order_id, broken).failures
    assert failure.reason == "Shipping/Pincode is missing or blank" and failure.raw == broken
    [failure] = REMAP["tatacliq"](channel, order.order_id, {"not": "xml"}).failures
    assert "not the order's XML" in failure.reason


def test_a_flipkart_record_of_one_or_more_shipments_maps_back_to_its_order():
    channel = Channel(id="UF", marketplace="flipkart", options={})
    one = flipkart.orders_page("UF", [shipment("SH1")], details("SH1"))
    [order] = one.orders
    assert REMAP["flipkart"](channel, order.order_id, one.raw[order.order_id]).orders == [order]

    two = flipkart.orders_page("UF", [shipment("SH1", item("I1")), shipment("SH2", item("I2", "SKU2"))],
                               {**details("SH1"), **details("SH2")})
    [order] = two.orders
    raw = two.raw[order.order_id]
    assert isinstance(raw, list) and REMAP["flipkart"](channel, order.order_id, raw).orders == [order]

    held = {**one.raw[order.order_id], "hold": True}
    [failure] = REMAP["flipkart"](channel, order.order_id, held).failures
    assert "on hold" in failure.reason
