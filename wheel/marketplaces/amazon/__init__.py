"""Amazon India through the Selling Partner API: Listings Items PATCHes and JSON_LISTINGS_FEEDs."""

from wheel.marketplaces.amazon.adapter import AmazonAdapter, make_adapter

__all__ = ["AmazonAdapter", "make_adapter"]
