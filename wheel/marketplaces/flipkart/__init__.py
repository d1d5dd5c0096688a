"""Flipkart: Marketplace Seller API v3 (OAuth client credentials, Listing v3 in batches of 10)."""

from wheel.marketplaces.flipkart.adapter import FlipkartAdapter, make_adapter

__all__ = ["FlipkartAdapter", "make_adapter"]
