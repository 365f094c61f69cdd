"""The frames SPEC §6 added for rooms of people: members, invites, regenerate, reactions,
typing, private rooms and reply modes; and the snapshot's byte cap."""

from __future__ import annotations

import json

import pytest

from chatsite.rooms.serializers import RoomData
from consumers import protocol
from consumers.actions.messages import PERSONAL_PART_BYTES, SNAPSHOT_MAX_BYTES, fit_messages
from consumers.protocol import (
    CreateInvite,
    FrameError,
    MemberChange,
    Regenerate,
    ToggleReaction,
    Typing,
    UpdateRoom,
)


def parse(data: object) -> protocol.ClientFrame:
    return protocol.parse_frame(json.dumps(data), None, max_text=100)


def refusal(data: object) -> str:
    with pytest.raises(FrameError) as caught:
        parse(data)
    return caught.value.code


def test_member_frames_carry_the_username() -> None:
    assert parse({"type": "member.add", "username": "bob"}) == MemberChange("bob", add=True)
    assert parse({"type": "member.remove", "username": "bob"}) == MemberChange("bob", add=False)


@pytest.mark.parametrize("username", [None, "", 7, "x" * 151, "bo\x00b", ["bob"]])
def test_a_member_frame_without_a_plausible_username_is_refused(username: object) -> None:
    assert refusal({"type": "member.add", "username": username}) == "invalid_message"


def test_invite_and_typing_take_no_fields() -> None:
    assert parse({"type": "invite.create"}) == CreateInvite()
    assert parse({"type": "typing"}) == Typing()


def test_regenerate_needs_a_positive_integer_message_id() -> None:
    assert parse({"type": "generation.regenerate", "message_id": 12}) == Regenerate(12)
    for bad in (None, 0, -1, True, "12", 1.5, 2**63):
        assert refusal({"type": "generation.regenerate", "message_id": bad}) == "invalid_message"


@pytest.mark.parametrize("emoji", protocol.EMOJI)
def test_each_of_the_eight_emoji_is_accepted(emoji: str) -> None:
    frame = parse({"type": "reaction.toggle", "message_id": 3, "emoji": emoji})
    assert frame == ToggleReaction(message_id=3, emoji=emoji)


@pytest.mark.parametrize("emoji", ["🙂", "", "👍👍", None, 1, "❤"])
def test_other_reactions_are_refused(emoji: object) -> None:
    assert refusal({"type": "reaction.toggle", "message_id": 3, "emoji": emoji}) == (
        "invalid_message"
    )


def test_room_update_takes_privacy_and_reply_mode() -> None:
    frame = parse({"type": "room.update", "private": True, "reply_mode": "mention"})
    assert frame == UpdateRoom(private=True, reply_mode="mention")


@pytest.mark.parametrize(
    "fields",
    [
        {"private": "yes"},
        {"private": 1},
        {"reply_mode": "sometimes"},
        {"reply_mode": None},
        {"title": None, "private": True},
    ],
)
def test_bad_privacy_or_reply_mode_is_refused(fields: dict[str, object]) -> None:
    assert refusal({"type": "room.update", **fields}) == "invalid_message"


@pytest.mark.parametrize("client_msg_id", ["a\x00b", "a\ud800b", "bell\x07"])
def test_a_client_msg_id_the_database_could_not_store_is_refused(client_msg_id: str) -> None:
    data = {"type": "message.send", "text": "hi", "client_msg_id": client_msg_id}
    assert refusal(data) == "invalid_message"


def test_finished_names_its_cost_and_who_stopped_it() -> None:
    frame = protocol.generation_finished(
        7, "stopped", "par", None, {}, None, cost_usd=0.0123, stopped_by="bob"
    )
    assert frame["cost_usd"] == 0.0123 and frame["stopped_by"] == "bob"


ROOM: RoomData = {
    "slug": "r",
    "title": "R",
    "owner": "alice",
    "model": "demo",
    "provider": "demo",
    "system_prompt": "",
    "models": [],
    "private": False,
    "members": [],
    "reply_mode": "always",
    "summary_upto_id": 0,
}


def message(n: int, text: str) -> dict[str, object]:
    return {"id": n, "role": "user", "author": "alice", "text": text, "status": "complete"}


def test_a_snapshot_keeps_the_newest_messages_that_fit_in_512_kib() -> None:
    # 50 messages of 8,000 four-byte emoji: about 1.6 MB encoded, three times the cap.
    messages = [message(n, "😀" * 8000) for n in range(1, 51)]
    fixed = protocol.snapshot(ROOM, "", [], None, None)
    kept = fit_messages(fixed, messages)
    frame = {**fixed, "messages": kept}
    size = len(protocol.encode(frame).encode())
    assert size <= SNAPSHOT_MAX_BYTES - PERSONAL_PART_BYTES
    assert [m["id"] for m in kept] == list(range(51 - len(kept), 51))  # the newest, in order
    assert 10 <= len(kept) < 50


def test_a_small_room_keeps_all_fifty() -> None:
    messages = [message(n, "hello") for n in range(1, 51)]
    fixed = protocol.snapshot(ROOM, "", [], None, None)
    assert fit_messages(fixed, messages) == messages
