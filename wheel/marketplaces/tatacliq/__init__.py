"""Tata CLiQ: the bearer-token JSON API the OMS team documented (no public spec exists)."""

from wheel.marketplaces.tatacliq.adapter import TataCliqAdapter, make_adapter

__all__ = ["TataCliqAdapter", "make_adapter"]
