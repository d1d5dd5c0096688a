"""Every Tata CLiQ path in one place: the API is unpublished, so these are the likeliest to change."""

RANGING = "/channels/{channel_id}/ranging"
DERANGING = "/channels/{channel_id}/deranging"
INVENTORY = "/channels/{channel_id}/inventory"
PRICING = "/channels/{channel_id}/pricing"
# Orders: XML GETs that answer every open order (every cancelled line) at once; UNCONFIRMED.
NEW_ORDERS = "/channels/{channel_id}/new-orders"
CANCELLED_ORDERS = "/channels/{channel_id}/cancelled-orders"
