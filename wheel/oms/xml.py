"""Hardened XML parsing for everything the OMS sends.

No DTDs (so no entities, external or expanding), no network, bounded size and depth, and
errors that say what is wrong in words an operator can act on.
"""

from __future__ import annotations

import copy
import re
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
    wide = _check_encoding(body)
    head = body[:4096].lstrip().upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper() or (wide and ("<!DOCTYPE" in wide or "<!ENTITY" in wide)):
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


# Byte order marks (XML 1.0, Appendix F), longest first: a UTF-32 LE mark starts as UTF-16 LE's.
_MARKS = (
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"), (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8", "UTF-8"), (b"\xff\xfe", "utf-16-le", "UTF-16"), (b"\xfe\xff", "utf-16-be", "UTF-16"),
)
# A document in UTF-16 or UTF-32 without a mark, told by how its first '<' is written (Appendix F).
_UNMARKED = ((b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"))
_DECLARED = re.compile(r"""<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


def _family(name: str) -> str:
    """utf-16le, UTF16, ucs-2... as one name per family."""
    name = re.sub(r"[-_\s]", "", name.lower())
    return {"ucs2": "utf16", "utf16le": "utf16", "utf16be": "utf16", "ucs4": "utf32", "utf32le": "utf32",
            "utf32be": "utf32"}.get(name, name)


def _check_encoding(body: bytes) -> str | None:
    """Refuse a byte order mark the XML declaration contradicts (XML 1.0, section 4.3.3: "a fatal
    error", which libxml2 lets through, believing the mark). Returns the text of a UTF-16 or
    UTF-32 document, for the DOCTYPE scan that reads ASCII bytes to see into it; else None."""
    for mark, codec, name in _MARKS:
        if body.startswith(mark):
            text = body[len(mark):len(mark) + 4096].decode(codec, errors="replace")
            declared = _DECLARED.match(text)
            if declared and _family(declared.group(1)) != _family(name):
                raise OmsMessageError(
                    f"the message starts with a {name} byte order mark but its XML declaration says "
                    f"encoding=\"{declared.group(1)}\"; XML 1.0 (section 4.3.3) makes that a fatal "
                    "error: the OMS must write the message in the encoding it declares"
                )
            return body[len(mark):].decode(codec, errors="replace").upper() if name != "UTF-8" else None
    for start, codec in _UNMARKED:
        if body.startswith(start):
            return body.decode(codec, errors="replace").upper()
    return None


@cache
def schema(name: str) -> etree.XMLSchema:
    source = resources.files("wheel.oms.schemas").joinpath(name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source, parser=_parser()))


# Items validated at a time. libxml2 finds each schema error's path by walking the element's earlier
# siblings, so one pass over a list of n bad items costs n^2: 100,000 of them (a 7 MB message) held
# a worker for minutes. In parts of this many, the same document costs a second or two.
CHUNK_ITEMS = 1000


def validate(root: etree._Element, schema_name: str) -> None:
    xsd = schema(schema_name)
    errors: list[str] = []
    count = 0
    for part, original, alone in _parts(root):
        if xsd.validate(part):
            continue
        log = list(xsd.error_log)
        count += len(log)
        for e in log[:max(0, 3 - len(errors))]:
            element = original(_element(part.getroottree(), e.path))
            line = element.sourceline if element is not None and element.sourceline else e.line
            errors.append(f"line {line}: {_item(element)}{e.message}")
        if alone:
            break  # the document's own shape is wrong: its items' errors would only repeat it
    if count:
        more = f" (and {count - 3:,} more)" if count > 3 else ""
        raise OmsMessageError(f"{schema_name}: " + "; ".join(errors) + more)


def _parts(root: etree._Element):
    """(document, its element -> the original element, whether it stands alone) to validate: the
    document itself when small; else its shape (the root and its item lists, without their
    items), then each item list's items CHUNK_ITEMS at a time, each under copies of its root and list."""
    if sum(len(child) for child in root) <= CHUNK_ITEMS:
        yield root, lambda element: element, True
        return
    shape = etree.Element(root.tag, dict(root.attrib), nsmap=root.nsmap)
    shape.text = root.text
    for child in root:
        copied = etree.SubElement(shape, child.tag, dict(child.attrib), nsmap=child.nsmap)
        copied.text, copied.tail = child.text, child.tail
    yield shape, lambda element: _mapped(element, root, lambda i: root[i]), True
    for child in root:
        items = list(child)  # once: an lxml slice walks from the list's start
        for start in range(0, len(items), CHUNK_ITEMS):
            part = etree.Element(root.tag, dict(root.attrib), nsmap=root.nsmap)
            holder = etree.SubElement(part, child.tag, dict(child.attrib), nsmap=child.nsmap)
            holder.text = child.text
            for item in items[start:start + CHUNK_ITEMS]:
                holder.append(copy.copy(item))
            yield part, lambda element, c=child, i=items, s=start: _mapped(element, root, lambda _, c=c: c, i, s), False


def _mapped(element, root, list_at, items=None, start=0):
    """The original of a part's element: the root, an item list, or the item (for anything inside one)."""
    if element is None:
        return None
    steps = []
    while element.getparent() is not None:
        steps.append(element.getparent().index(element))
        element = element.getparent()
    steps.reverse()
    if not steps:
        return root
    if len(steps) == 1:
        return list_at(steps[0])
    return items[start + steps[1]] if items is not None else None


def _element(tree: etree._ElementTree, path: str | None):
    """The element a schema error is about, by its path (a line can hold many items); None for a
    path that is not plain XPath (a prefix the tree does not declare at its root, say)."""
    try:
        found = tree.xpath(path) if path else []
    except etree.XPathError:
        return None
    return found[0] if isinstance(found, list) and len(found) == 1 and isinstance(found[0], etree._Element) else None


def _item(element) -> str:
    """Which item a schema error is about, so the operator can find it in the OMS."""
    if element is None or element.get("ItemID") is None:
        return ""
    return f"item {(element.get('ItemID') or '').strip() or '?'} on channel {(element.get('ChannelID') or '').strip() or '?'}: "
