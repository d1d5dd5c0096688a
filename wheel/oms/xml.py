"""Hardened XML parsing for everything the OMS sends.

No DTDs (so no entities, external or expanding), no network, bounded size and depth, and
errors that say what is wrong in words an operator can act on.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from lxml import etree


class OmsMessageError(ValueError):
    """The message cannot be accepted; `str()` says why, for the event log."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(body: bytes, *, max_bytes: int) -> etree._Element:
    """Parse an OMS message safely, or raise OmsMessageError saying why not."""
    if len(body) > max_bytes:
        raise OmsMessageError(
            f"message is {len(body):,} bytes, over the {max_bytes:,}-byte limit "
            "(WHEEL_MAX_MESSAGE_BYTES); it was stored but not parsed"
        )
    if not body.strip():
        raise OmsMessageError("message is empty")
    head = body[:4096].lstrip().upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise OmsMessageError(
            "DOCTYPE and ENTITY declarations are refused (no external entities, no entity "
            "expansion); the OMS documents have none"
        )
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise OmsMessageError(f"not well-formed XML: {exc}") from None
    except ValueError as exc:  # e.g. an unknown encoding name in the XML declaration
        raise OmsMessageError(f"cannot read the message: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise OmsMessageError("DOCTYPE declarations are refused")
    return root


@cache
def schema(name: str) -> etree.XMLSchema:
    source = resources.files("wheel.oms.schemas").joinpath(name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source, parser=_parser()))


def validate(root: etree._Element, schema_name: str) -> None:
    xsd = schema(schema_name)
    if not xsd.validate(root):
        items = {el.sourceline: el for el in root.iter() if el.get("ItemID") is not None}
        errors = [f"line {e.line}: {_item(items.get(e.line))}{e.message}" for e in xsd.error_log]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise OmsMessageError(f"{schema_name}: " + "; ".join(errors[:3]) + more)


def _item(element) -> str:
    """Which item a schema error is about, so the operator can find it in the OMS."""
    if element is None:
        return ""
    return f"item {(element.get('ItemID') or '').strip() or '?'} on channel {(element.get('ChannelID') or '').strip() or '?'}: "
