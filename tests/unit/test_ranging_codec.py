"""The OMS ranging codec: the XSD's rules, the domain rules, and hostile input, all refused in words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wheel.domain import RangingItem, group_by_channel
from wheel.oms.ranging import decode_ranging
from wheel.oms.xml import OmsMessageError

SAMPLE = Path(__file__).parents[1] / "samples" / "ranging.xml"
MAX = 1024 * 1024


def item(channel: str | None = "UA", ean: str | None = "E1", sku: str | None = "S1", flag: str | None = "Y") -> str:
    attrs = {"ChannelID": channel, "EAN": ean, "ItemID": sku, "RangeFlag": flag}
    return "<EXTNChannelItem " + " ".join(f'{k}="{v}"' for k, v in attrs.items() if v is not None) + "/>"


def document(*lists: list[str]) -> bytes:
    body = "".join("<EXTNChannelItemList>" + "".join(items) + "</EXTNChannelItemList>" for items in lists)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<EXTNChannelList>{body}</EXTNChannelList>'.encode()


def refused(body: bytes, max_bytes: int = MAX) -> str:
    with pytest.raises(OmsMessageError) as info:
        decode_ranging(body, max_bytes=max_bytes)
    return str(info.value)


# -- the sample and the happy path ------------------------------------------------------------


def test_sample_decodes_to_three_items_in_document_order():
    items = decode_ranging(SAMPLE.read_bytes(), max_bytes=MAX)
    assert items == [
        RangingItem("UA", "SKU1", "EAN_1"),
        RangingItem("UA", "SKU2", "EAN_2"),
        RangingItem("UB", "SKU3", "EAN_3"),
    ]


def test_sample_groups_by_channel():
    grouped = group_by_channel(decode_ranging(SAMPLE.read_bytes(), max_bytes=MAX))
    assert {ch: [i.sku for i in items] for ch, items in grouped.items()} == {"UA": ["SKU1", "SKU2"], "UB": ["SKU3"]}
    assert list(grouped) == ["UA", "UB"]


def test_values_are_stripped_of_surrounding_whitespace():
    items = decode_ranging(document([item(channel="  UA ", ean=" E1  ", sku="   S1 ")]), max_bytes=MAX)
    assert items == [RangingItem("UA", "S1", "E1")]


def test_extra_attributes_are_ignored():
    body = document(['<EXTNChannelItem ChannelID="UA" EAN="E1" ItemID="S1" RangeFlag="Y" Note="x"/>'])
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1")]


def test_ignore_ordering_on_the_item_list_is_accepted():
    # Optional on EXTNChannelItemList in the OMS's ranging schema (github demystifyfp/BlogSamples,
    # clojure/wheel/resources/oms/message_schema/ranging.xsd).
    body = document([item()]).replace(b"<EXTNChannelItemList>", b'<EXTNChannelItemList IgnoreOrdering="Y">')
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1")]


def test_same_item_twice_is_kept_once():
    body = document([item(), item(sku="S2", ean="E2")], [item()])
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1"), RangingItem("UA", "S2", "E2")]


def test_same_item_twice_after_stripping_is_kept_once():
    body = document([item(sku="S1"), item(sku=" S1 ")])
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1")]


def test_same_sku_on_two_channels_is_fine():
    body = document([item(channel="UA", ean="E1"), item(channel="UB", ean="E9")])
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1"), RangingItem("UB", "S1", "E9")]


def test_same_sku_on_same_channel_with_two_eans_names_sku_eans_and_line():
    body = (
        b"<EXTNChannelList>\n<EXTNChannelItemList>\n"
        + item(sku="SKU7", ean="EAN_A").encode() + b"\n"
        + item(sku="SKU7", ean="EAN_B").encode() + b"\n"
        + b"</EXTNChannelItemList>\n</EXTNChannelList>"
    )
    message = refused(body)
    assert "SKU7" in message and "EAN_A" in message and "EAN_B" in message
    assert "line 4" in message


# -- the XSD's rules ----------------------------------------------------------------------------


def test_no_item_list_is_refused():
    message = refused(b"<EXTNChannelList/>")
    assert "EXTNChannelItemList" in message


def test_item_list_without_items_is_refused():
    # The OMS's schema allows an empty list; a document with no item at all is refused, as the
    # original middleware's spec refused it (an item list of at least one).
    message = refused(b"<EXTNChannelList><EXTNChannelItemList/></EXTNChannelList>")
    assert "names no EXTNChannelItem" in message


@pytest.mark.parametrize("attribute", ["ChannelID", "EAN", "ItemID"])
def test_missing_attribute_is_refused(attribute):
    kwargs = {"ChannelID": "channel", "EAN": "ean", "ItemID": "sku"}
    message = refused(document([item(**{kwargs[attribute]: None})]))
    assert attribute in message and "required" in message


@pytest.mark.parametrize("attribute", ["ChannelID", "EAN", "ItemID"])
@pytest.mark.parametrize("value", ["", "   ", "&#9; "])
def test_empty_or_whitespace_attribute_is_refused(attribute, value):
    kwargs = {"ChannelID": "channel", "EAN": "ean", "ItemID": "sku"}
    message = refused(document([item(**{kwargs[attribute]: value})]))
    assert f"attribute '{attribute}'" in message


def test_range_flag_n_is_refused():
    message = refused(document([item(flag="N")]))
    assert "RangeFlag" in message and "'N'" in message


def test_missing_range_flag_is_refused():
    message = refused(document([item(flag=None)]))
    assert "RangeFlag" in message and "required" in message


def test_wrong_root_element_is_refused():
    body = b"<EXTNChannelDerangeList><EXTNChannelItemList>" + item().encode() + b"</EXTNChannelItemList></EXTNChannelDerangeList>"
    message = refused(body)
    assert "EXTNChannelDerangeList" in message


def test_error_names_the_schema_and_the_line():
    body = b"<EXTNChannelList>\n<EXTNChannelItemList>\n" + item(flag="N").encode() + b"\n</EXTNChannelItemList></EXTNChannelList>"
    message = refused(body)
    assert message.startswith("ranging.xsd: ") and "line 3" in message


# -- hostile and broken input ------------------------------------------------------------------


def test_external_entity_is_refused_without_reading_the_file():
    passwd = Path("/etc/passwd").read_text()
    first_line = passwd.splitlines()[0]
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE EXTNChannelList [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b'<EXTNChannelList><EXTNChannelItemList>'
        b'<EXTNChannelItem ChannelID="UA" EAN="&x;" ItemID="S1" RangeFlag="Y"/>'
        b"</EXTNChannelItemList></EXTNChannelList>"
    )
    message = refused(body)
    assert "DOCTYPE" in message
    assert first_line not in message and "root:" not in message


def test_external_entity_in_utf16_is_refused_without_reading_the_file():
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        '<EXTNChannelList><EXTNChannelItemList>'
        '<EXTNChannelItem ChannelID="UA" EAN="&x;" ItemID="S1" RangeFlag="Y"/>'
        "</EXTNChannelItemList></EXTNChannelList>"
    )
    message = refused(text.encode("utf-16"))
    assert "root:" not in message


def test_billion_laughs_is_refused_quickly():
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = f'<?xml version="1.0"?><!DOCTYPE EXTNChannelList [{entities}]><EXTNChannelList>&lol9;</EXTNChannelList>'
    started = time.monotonic()
    message = refused(body.encode())
    assert "DOCTYPE" in message or "ENTITY" in message
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("declaration", "prolog"),
    [
        (b'<?xml version="1.0"?>', b"<!--" + b"x" * 5000 + b"-->\n"),
        (b'<?xml version="1.0"?>', b" \n" * 3000),
        (b'<?xml version="1.0"?>', b"\n" * 10 + b"<!--" + b"y" * 8000 + b"-->"),
        (b"", b" " * 5000),
    ],
    ids=["comment", "whitespace", "whitespace-and-comment", "leading-whitespace"],
)
def test_doctype_after_a_long_prolog_is_still_refused(declaration, prolog):
    assert len(prolog) > 4096
    body = (
        declaration + prolog
        + b'<!DOCTYPE EXTNChannelList SYSTEM "file:///etc/passwd">'
        + document([item()]).split(b"?>", 1)[1]
    )
    assert b"<!DOCTYPE" not in body[:4096].lstrip().upper()
    message = refused(body)
    assert "DOCTYPE" in message


def test_message_over_max_bytes_names_size_and_limit_without_parsing(monkeypatch):
    import wheel.oms.xml as xml

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsing was attempted")

    monkeypatch.setattr(xml.etree, "fromstring", no_parsing)
    body = document([item()] * 40)
    assert len(body) > 2000
    message = refused(body, max_bytes=2000)
    assert f"{len(body):,}" in message and "2,000" in message


def test_message_at_exactly_max_bytes_is_parsed():
    body = document([item()])
    assert decode_ranging(body, max_bytes=len(body)) == [RangingItem("UA", "S1", "E1")]


def test_bytes_invalid_in_declared_encoding_are_refused():
    body = document([item(ean="E1")]).replace(b"E1", b"E\xff1")
    message = refused(body)
    assert "not well-formed XML" in message and "encoding" in message.lower()


def test_unknown_encoding_name_is_refused():
    body = document([item()]).replace(b'encoding="UTF-8"', b'encoding="X-NO-SUCH-ENCODING"')
    message = refused(body)
    assert "X-NO-SUCH-ENCODING" in message


@pytest.mark.parametrize("body", [b"", b"  \n\t "], ids=["empty", "whitespace"])
def test_empty_body_is_refused(body):
    assert "empty" in refused(body)


def test_plain_text_is_refused():
    assert "not well-formed XML" in refused(b"SKU1,EAN_1,UA,Y\n")


def test_deeply_nested_document_is_refused_quickly():
    depth = 100_000
    body = b"<EXTNChannelList>" + b"<a>" * depth + b"</a>" * depth + b"</EXTNChannelList>"
    started = time.monotonic()
    message = refused(body, max_bytes=len(body))
    assert "depth" in message.lower()
    assert time.monotonic() - started < 2


# -- byte order marks, wide encodings, and characters no OMS id holds ---------------------------


def test_utf8_byte_order_mark_is_accepted():
    # XML 1.0, section 4.3.3: "entities encoded in UTF-8 MAY begin with the Byte Order Mark".
    body = b"\xef\xbb\xbf" + document([item()])
    assert decode_ranging(body, max_bytes=MAX) == [RangingItem("UA", "S1", "E1")]


@pytest.mark.parametrize(
    ("body", "mark", "declared"),
    [
        (b"\xef\xbb\xbf" + document([item()]).replace(b"UTF-8", b"UTF-16"), "UTF-8", "UTF-16"),
        (b"\xff\xfe" + document([item()]).decode().encode("utf-16-le"), "UTF-16", "UTF-8"),
    ],
    ids=["utf8-mark-utf16-declared", "utf16-mark-utf8-declared"],
)
def test_byte_order_mark_contradicting_the_declaration_is_refused(body, mark, declared):
    # XML 1.0, section 4.3.3: a fatal error, which libxml2 lets through (it believes the mark).
    message = refused(body)
    assert f"{mark} byte order mark" in message and declared in message


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_doctype_in_a_wide_encoding_is_refused_by_name(codec):
    text = (
        '<?xml version="1.0" encoding="%s"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        '<EXTNChannelList><EXTNChannelItemList>'
        '<EXTNChannelItem ChannelID="UA" EAN="&x;" ItemID="S1" RangeFlag="Y"/>'
        "</EXTNChannelItemList></EXTNChannelList>" % codec.split("-le")[0].upper()
    )
    message = refused(text.encode(codec))
    assert "DOCTYPE" in message and "root:" not in message


@pytest.mark.parametrize(
    ("attribute", "value", "words"),
    [
        ("ItemID", "SKU&#9;1", "control character U+0009"),
        ("ItemID", "SKU&#x85;1", "control character U+0085"),
        ("EAN", "&#x9B;31mE1", "control character U+009B"),
        ("ItemID", "&#x200B;", "invisible formatting character U+200B"),
        ("EAN", "E&#x202E;1", "invisible formatting character U+202E"),
        ("ChannelID", "U&#xAD;A", "invisible formatting character U+00AD"),
        # Found by hypothesis: an id that is only U+0085 was stripped to an empty channel id.
        ("ChannelID", "&#x85;", "control character U+0085"),
    ],
)
def test_control_and_invisible_characters_in_ids_are_refused(attribute, value, words):
    # The OMS's ids are printable (see sku_problem in wheel/domain.py); a tab or a zero-width space
    # makes a SKU no marketplace and no person can match.
    kwargs = {"ChannelID": "channel", "EAN": "ean", "ItemID": "sku"}
    message = refused(document([item(**{kwargs[attribute]: value})]))
    assert f"attribute {attribute}" in message and words in message and "line 2" in message


def test_printable_letters_outside_ascii_are_accepted():
    body = document([item(sku="\u0915\u0941\u0930\u094d\u0924\u093e-\U0001F455")])
    assert decode_ranging(body, max_bytes=MAX)[0].sku == "\u0915\u0941\u0930\u094d\u0924\u093e-\U0001F455"


def test_a_schema_error_names_the_item_it_is_about_when_items_share_a_line():
    # The OMS may send a document on one line: the line alone cannot tell its items apart.
    body = document([item(channel="UA", sku="BAD", flag="N"), item(channel="UB", sku="GOOD")])
    assert body.count(b"\n") == 1
    message = refused(body)
    assert "item BAD on channel UA" in message and "GOOD" not in message


def test_an_error_about_the_root_names_no_item():
    body = b'<soap:Envelope xmlns:soap="urn:s">' + document([item()]).split(b"?>", 1)[1].strip() + b"</soap:Envelope>"
    assert b"\n" not in body
    message = refused(body)
    assert "Envelope" in message and "item S1" not in message


def test_a_large_document_of_invalid_items_is_refused_quickly_naming_the_first_ones():
    # Every schema error made libxml2 walk the item's siblings for its path: 100,000 bad items (a
    # 7 MB message, under the 10 MB limit) held a worker 77 seconds.
    rows = [item(sku=f"S{n}", flag="N") for n in range(100_000)]
    body = b"<EXTNChannelList>\n<EXTNChannelItemList>\n" + "\n".join(rows).encode() + b"\n</EXTNChannelItemList></EXTNChannelList>"
    started = time.monotonic()
    message = refused(body, max_bytes=len(body))
    assert time.monotonic() - started < 15
    assert message.startswith("ranging.xsd: line 3: item S0 on channel UA: ")
    assert "line 4: item S1 on channel UA" in message and "(and 99,997 more)" in message


def test_a_large_document_with_a_wrong_root_says_so_once():
    rows = [item(sku=f"S{n}") for n in range(3000)]
    body = b"<EXTNChannelDerangeList><EXTNChannelItemList>" + "".join(rows).encode() + b"</EXTNChannelItemList></EXTNChannelDerangeList>"
    message = refused(body)
    assert message.count("EXTNChannelDerangeList") == 1 and "more" not in message


@pytest.mark.parametrize("extra", [b"text", b"<Other/>"])
def test_a_large_document_with_something_between_its_items_is_refused(extra):
    rows = [item(sku=f"S{n}").encode() for n in range(3000)]
    rows[2500] += extra
    body = b"<EXTNChannelList><EXTNChannelItemList>" + b"".join(rows) + b"</EXTNChannelItemList></EXTNChannelList>"
    assert "ranging.xsd" in refused(body)


def test_a_large_valid_document_decodes_whole():
    rows = [item(sku=f"S{n}") for n in range(5000)]
    body = document(rows[:2500], rows[2500:])
    assert [i.sku for i in decode_ranging(body, max_bytes=MAX * 2)] == [f"S{n}" for n in range(5000)]
