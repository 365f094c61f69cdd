"""Parsing of client frames (SPEC §6 error codes) and the shape of server frames."""

from __future__ import annotations

import json

import pytest

from consumers import protocol
from consumers.protocol import FrameError, SendMessage, StopGeneration, Sync, UpdateRoom


def parse(data: object, max_text: int = 100) -> protocol.ClientFrame:
    return protocol.parse_frame(json.dumps(data), None, max_text=max_text)


def code_of(text: str | None, bytes_data: bytes | None = None, max_text: int = 100) -> str:
    with pytest.raises(FrameError) as caught:
        protocol.parse_frame(text, bytes_data, max_text=max_text)
    return caught.value.code


def test_send_message_keeps_text_and_client_id() -> None:
    frame = parse({"type": "message.send", "text": "hi\tthere\n", "client_msg_id": "abc"})
    assert frame == SendMessage(text="hi\tthere\n", client_msg_id="abc")


def test_control_characters_except_newline_and_tab_are_removed() -> None:
    frame = parse({"type": "message.send", "text": "a\x00b\x07c\r\nd\ud800e"})
    assert isinstance(frame, SendMessage)
    assert frame.text == "abc\nde"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[" * 100_000 + "]" * 100_000, "too_long"),
        ("[" * 30_000 + "]" * 30_000, "invalid_json"),  # too deeply nested: RecursionError
        ("[1, 2]", "invalid_message"),
        ('"just a string"', "invalid_message"),
        ("{}", "invalid_message"),
        ('{"type": 5}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "message.send"}', "invalid_message"),
        ('{"type": "message.send", "text": 5}', "invalid_message"),
        ('{"type": "message.send", "text": "   \\n\\t "}', "empty"),
        ('{"type": "message.send", "text": "\\u0000"}', "empty"),
        ('{"type": "message.send", "text": "hi", "client_msg_id": 7}', "invalid_message"),
        (
            '{"type": "message.send", "text": "hi", "client_msg_id": "' + "x" * 65 + '"}',
            "invalid_message",
        ),
        ('{"type": "generation.stop", "message_id": "7"}', "invalid_message"),
        ('{"type": "generation.stop", "message_id": true}', "invalid_message"),
        ('{"type": "room.update"}', "invalid_message"),
        ('{"type": "room.update", "colour": "red"}', "invalid_message"),
        ('{"type": "room.update", "title": ""}', "invalid_message"),
        ('{"type": "room.update", "title": "' + "t" * 101 + '"}', "invalid_message"),
        ('{"type": "room.update", "system_prompt": "' + "p" * 4001 + '"}', "invalid_message"),
        ('{"type": "room.update", "model": 3}', "invalid_message"),
    ],
)
def test_bad_frames_get_their_error_code(raw: str, code: str) -> None:
    assert code_of(raw) == code


def test_binary_frames_are_invalid_json() -> None:
    assert code_of(None, b'{"type": "sync"}') == "invalid_json"


def test_text_over_the_limit_is_too_long_and_at_the_limit_is_fine() -> None:
    assert (
        code_of(json.dumps({"type": "message.send", "text": "x" * 11}), max_text=10) == "too_long"
    )
    assert parse({"type": "message.send", "text": "x" * 10}, max_text=10) == SendMessage(
        "x" * 10, None
    )


def test_frames_over_64_kib_are_too_long() -> None:
    raw = json.dumps({"type": "message.send", "text": "é" * 40_000})  # < 64 K chars, > 64 KiB
    assert code_of(raw, max_text=100_000) == "too_long"


def test_stop_sync_and_update_parse() -> None:
    assert parse({"type": "generation.stop"}) == StopGeneration(None)
    assert parse({"type": "generation.stop", "message_id": 4}) == StopGeneration(4)
    assert parse({"type": "sync"}) == Sync()
    assert parse({"type": "room.update", "title": "  New  ", "model": "m"}) == UpdateRoom(
        title="New", system_prompt=None, model="m"
    )


def test_error_frame_carries_retry_after_only_when_given() -> None:
    assert FrameError("empty", "The message is empty.").frame() == {
        "type": "error",
        "code": "empty",
        "message": "The message is empty.",
    }
    assert protocol.error("rate_limited", "slow down", 3.5)["retry_after"] == 3.5


def test_encode_keeps_unicode_compact() -> None:
    assert protocol.encode({"type": "x", "text": "é"}) == '{"type":"x","text":"é"}'
