"""Property tests of the client-frame parser (issue 12): whatever a client sends, the parser
answers a typed frame or a FrameError with a code of SPEC §6, and never raises anything else.
Every string a parsed frame carries can be stored: no NUL, no lone surrogate."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import protocol
from consumers.protocol import FrameError, parse_frame

MAX_TEXT = 8000
ERROR_CODES = set(protocol.ErrorCode.__args__)  # type: ignore[attr-defined]
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
TYPES = [
    "message.send",
    "generation.stop",
    "sync",
    "room.update",
    "member.add",
    "member.remove",
    "invite.create",
    "generation.regenerate",
    "reaction.toggle",
    "typing",
]
FIELDS = ["text", "client_msg_id", "message_id", "title", "system_prompt", "model", "private"]
FIELDS += ["reply_mode", "username", "emoji", "x"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=20) | json_values},
    optional={name: json_values | st.sampled_from(protocol.EMOJI) for name in FIELDS},
)


def check(text: str) -> None:
    try:
        frame = parse_frame(text, None, max_text=MAX_TEXT)
    except FrameError as exc:
        assert exc.code in ERROR_CODES
        assert protocol.encode(exc.frame())  # the error frame itself can be sent
        return
    for field in fields(frame):
        value: Any = getattr(frame, field.name)
        if isinstance(value, str):
            assert not UNSTORABLE.search(value), (field.name, value)
        if isinstance(value, int) and not isinstance(value, bool):
            assert 0 < value < 2**63


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_any_frame_shaped_object_parses_or_is_refused(frame: dict[str, Any]) -> None:
    check(json.dumps(frame))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_parses_or_is_refused(value: Any) -> None:
    check(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TYPES), st.text(alphabet=st.characters(codec=None), max_size=70))
def test_raw_escapes_reach_no_field_unchecked(kind: str, value: str) -> None:
    """Lone surrogates and NUL written as JSON escapes, in every string field."""
    escaped = json.dumps(value)  # \\udXXX for surrogates, \\u0000 for NUL
    for name in ("text", "client_msg_id", "title", "model", "username", "system_prompt"):
        check(f'{{"type": "{kind}", "{name}": {escaped}}}')


def test_deep_nesting_and_huge_numbers_are_refused() -> None:
    for text in ("[" * 60_000, '{"a":' * 10_000, "1" * 5000, '{"type":"sync","n":' + "9" * 5000):
        check(text)
    try:
        parse_frame(None, b"\x00binary", max_text=MAX_TEXT)
    except FrameError as exc:
        assert exc.code == "invalid_json"
    else:
        raise AssertionError("a binary frame was accepted")
