"""The hostile-input corpus of OMS messages (tests/corpus/oms/manifest.toml): its messages, those
too large to commit built here at test time, each with the event it must produce."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CORPUS = Path(__file__).parents[1] / "corpus" / "oms"
MANIFEST = CORPUS / "manifest.toml"
# Events that set the message aside as `failed`; every other expected event leaves it `processed`.
FAILING_EVENTS = ("system/parsing-failed", "system/processing-failed")


@dataclass(frozen=True)
class CorpusMessage:
    name: str
    queue: str  # the operation whose OMS queue carries it
    event: str
    error: str
    why: str
    file: str | None = None
    generator: str | None = None

    @property
    def accepted(self) -> bool:
        """Accepted whole: no system/* event at all."""
        return not self.event.startswith("system/")

    @property
    def status(self) -> str:
        return "failed" if self.event in FAILING_EVENTS else "processed"

    def body(self) -> bytes:
        if self.generator is not None:
            return GENERATORS[self.generator]()
        return (CORPUS / self.file).read_bytes()


@cache
def messages() -> tuple[CorpusMessage, ...]:
    entries = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))["message"]
    out = []
    for entry in entries:
        name = entry.get("name") or entry["file"]
        out.append(CorpusMessage(name=name, queue=entry["queue"], event=entry["event"], error=entry["error"],
                                 why=entry["why"], file=entry.get("file"), generator=entry.get("generator")))
    return tuple(out)


# -- generators: messages built at test time ------------------------------------------------------


def _ranging(items: list[str]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<EXTNChannelList><EXTNChannelItemList>\n'
            + "\n".join(items) + "\n</EXTNChannelItemList></EXTNChannelList>\n").encode()


def _item(n: int, channel: str = "UA") -> str:
    return f'<EXTNChannelItem ChannelID="{channel}" EAN="EAN_{n}" ItemID="SKU{n}" RangeFlag="Y"/>'


@cache
def huge_20mb() -> bytes:
    """A valid ranging document of over 20 MB (Wheel's default limit is 10 MB)."""
    body = _ranging([_item(n) for n in range(260_000)])
    assert len(body) > 20 * 1024 * 1024
    return body


@cache
def ten_thousand_items() -> bytes:
    return _ranging([_item(n) for n in range(10_000)])


@cache
def many_invalid_items() -> bytes:
    """100,000 items, every one with a schema error: 7 MB, under the 10 MB limit. Validated whole,
    libxml2's cost per error grows with the item's place in its list (minutes in all)."""
    return _ranging([f'<EXTNChannelItem ChannelID="UA" EAN="EAN_{n}" ItemID="SKU{n}" RangeFlag="N"/>'
                     for n in range(100_000)])


@cache
def quadratic_blowup() -> bytes:
    """One 50 KB entity referenced 20,000 times: a gigabyte once expanded, without the nesting a
    billion-laughs guard looks for."""
    entity = "a" * 50_000
    refs = "&a;" * 20_000
    return (f'<?xml version="1.0"?>\n<!DOCTYPE EXTNChannelList [<!ENTITY a "{entity}">]>\n'
            f'<EXTNChannelList><EXTNChannelItemList><EXTNChannelItem ChannelID="UA" EAN="{refs}" ItemID="SKU1" '
            f'RangeFlag="Y"/></EXTNChannelItemList></EXTNChannelList>').encode()


@cache
def deep_nesting() -> bytes:
    depth = 100_000
    return b"<EXTNChannelList>" + b"<a>" * depth + b"</a>" * depth + b"</EXTNChannelList>"


@cache
def megabyte_channel() -> bytes:
    return _ranging([f'<EXTNChannelItem ChannelID="{"U" * 1024 * 1024}" EAN="EAN_1" ItemID="SKU1" RangeFlag="Y"/>'])


GENERATORS = {f.__name__: f for f in (huge_20mb, ten_thousand_items, many_invalid_items, quadratic_blowup, deep_nesting,
                                       megabyte_channel)}
