"""The Slack layout of an alert (wheel/alert_layout.py): escaping, cutting, commands, masking."""

from __future__ import annotations

import json

from wheel.alert_layout import AlertEvent, build_message, command_for, escape


def shown(message) -> str:
    parts = [message.text]
    for attachment in message.attachments:
        parts.append(attachment["fallback"])
        for block in attachment["blocks"]:
            if "text" in block:
                parts.append(block["text"]["text"])
            parts += [f["text"] for f in block.get("fields", [])]
    return "\n".join(parts)


def event(**kwargs) -> AlertEvent:
    values = dict(id=7, name="system/processing-failed", level="error", parent_id=3, channel_id="UB",
                  marketplace="tatacliq", payload={"error": "boom"})
    values.update(kwargs)
    return AlertEvent(**values)


def test_only_ampersand_and_angle_brackets_are_escaped():
    assert escape("a & <b> 'c' \"d\" *e*") == "a &amp; &lt;b&gt; 'c' \"d\" *e*"


def test_marketplace_text_is_escaped_in_the_headline_fields_and_code_block():
    hostile = "<!channel> & <https://evil.example|click>"
    message = build_message([event(channel_id=hostile, payload={"error": hostile, "items": [{"sku": hostile}]})])
    text = shown(message)
    assert "<" not in text and ">" not in text
    assert text.count("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;") >= 5  # headline, fields, payload


def test_the_payload_cannot_close_its_code_block_and_is_cut_on_escaped_length():
    message = build_message([event(payload={"error": "x", "blob": "```" + "<" * 3000})], payload_chars=1500)
    [code] = [b["text"]["text"] for b in message.attachments[0]["blocks"] if "text" in b
              and b["text"]["text"].startswith("*Payload*")]
    inner = code.split("\n", 1)[1]
    assert inner.startswith("```") and inner.endswith("```") and inner[3:-3].count("```") == 0
    body, _, note = inner[3:-3].partition("… (cut: ")
    assert len(body) <= 1500 and body.endswith("&lt;") and note.endswith("more characters)")
    assert len(code) < 3000  # Slack's limit for a section's text


def test_credential_keys_are_masked_and_secrets_replaced():
    message = build_message([event(payload={"error": "token xoxb-1 refused", "refresh_token": "Atzr|x",
                                            "nested": {"Authorization": "Bearer y"}})], secrets=["xoxb-1"])
    text = shown(message)
    assert "xoxb-1" not in text and "Atzr|x" not in text and "Bearer y" not in text
    assert "token *** refused" in text


def test_a_burst_names_its_count_and_first_ids():
    events = [event(id=i, payload={"error": "boom", "items": [{"sku": f"S{i}"}]}) for i in range(10, 15)]
    message = build_message(events, count=42, window_s=60)
    text = shown(message)
    assert "system/processing-failed ×42 on channel UB within 60 s: boom" in text
    assert "*Event Ids*\n10, 11, 12, 13, 14 and 37 more" in text and "*Count*\n42" in text
    assert "*SKUs*\nS10, S11, S12, S13, S14" in text


def test_commands_per_event_name():
    assert command_for(event(name="system/channel-blocked")) == "wheelctl channels list"
    assert command_for(event(name="system/parsing-failed", inbox_id=9)) == "wheelctl inbox show 9"
    assert command_for(event(name="system/parsing-failed")) == "wheelctl events --parent 3"  # no inbox id
    assert command_for(event(name="order/failed", channel_id="U Z")) == "wheelctl orders list --status failed --channel 'U Z'"
    assert command_for(event(name="ranging/failed", parent_id=None)) == "wheelctl events --parent 7"


def test_colour_by_level_and_json_payload():
    error, warning = build_message([event()]), build_message([event(level="warning")])
    assert error.attachments[0]["color"] != warning.attachments[0]["color"]
    json.dumps(error.attachments)  # what slack-sdk sends
