"""Every Tata CLiQ path in one place: the API is unpublished, so these are the likeliest to change.

RANGING and NEW_ORDERS are the original Wheel's (github demystifyfp/BlogSamples,
clojure/wheel/src/wheel/marketplace/tata_cliq/api.clj). The others are UNCONFIRMED: invented by
analogy with RANGING, as nothing published names them. Tata CLiQ's real PartnerConnect API uses
other paths altogether (`.../PartnerConnect/PC_{SellerID}/AP_INVENTORY/...`, as integrators show at
https://auperator.atlassian.net/wiki/spaces/POE/pages/1830780929/Tata+Cliq+Update+Inventory+Flow).
"""

RANGING = "/channels/{channel_id}/ranging"
DERANGING = "/channels/{channel_id}/deranging"  # UNCONFIRMED
INVENTORY = "/channels/{channel_id}/inventory"  # UNCONFIRMED
PRICING = "/channels/{channel_id}/pricing"  # UNCONFIRMED
# Orders: XML GETs that answer every open order (every cancelled line) at once.
NEW_ORDERS = "/channels/{channel_id}/new-orders"
CANCELLED_ORDERS = "/channels/{channel_id}/cancelled-orders"  # UNCONFIRMED
