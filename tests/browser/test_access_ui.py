"""The Members & access card in Chromium (issue 11): the owner makes the room private (a
non-member's open tab is shown out), adds and removes a member by username, copies and revokes
invite links; a member sees the member list and the system prompt read-only."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.browser.conftest import PersonFactory
    from tests.conftest import DaphnePair

pytestmark = pytest.mark.browser

PROMPT = "Answer like a ship's captain."


def shown_out(page: Page) -> None:
    """The tab says it may not stay (the socket closed with 4403) and stops reconnecting."""
    expect(page.locator("#fatal")).to_be_visible()
    expect(page.locator("#fatal")).to_contain_text("not allowed")


def test_the_owner_manages_privacy_members_and_invites_from_the_room(
    daphne_pair: DaphnePair, person: PersonFactory, unique: Callable[[str], str]
) -> None:
    alice, bob = person("alice"), person("bob")
    slug = unique("room")
    owner = alice.open_room(daphne_pair.a, slug)
    guest = bob.open_room(daphne_pair.b, slug)
    card, guest_card = owner.locator("#access-card"), guest.locator("#access-card")
    expect(card.locator("#access-mode")).to_contain_text("Public")
    expect(guest_card.locator("#access-owner-tools")).to_be_hidden()

    # The owner writes a system prompt; the others read it on the card.
    owner.locator("#settings-button").click()
    owner.fill("#settings-prompt", PROMPT)
    owner.locator("#settings-form button[type=submit]").click()
    expect(guest.locator("#access-prompt")).to_have_text(PROMPT)
    expect(owner.locator("#access-prompt-box")).to_be_hidden()  # she edits it in the dialog

    # Private: bob, not a member, is shown out of his open tab on the other process.
    owner.locator("#access-private").check()
    expect(card.locator("#access-mode")).to_contain_text("Private")
    shown_out(guest)

    # Added by username, he is back in, and sees the member list without owner tools.
    owner.fill("#access-add-username", bob.username)
    owner.locator("#access-add-form button[type=submit]").click()
    member_row = card.locator(f'.access-member[data-username="{bob.username}"]')
    expect(member_row).to_be_visible()
    guest.reload()
    expect(guest.locator("#connection-status")).to_have_attribute("data-state", "online")
    expect(guest_card.locator(".access-member")).to_have_count(2)
    expect(guest_card.locator(".access-remove")).to_have_count(0)
    expect(guest_card.locator("#access-owner-tools")).to_be_hidden()
    expect(guest_card.locator("#access-invite")).to_be_hidden()  # private: the owner invites
    expect(guest.locator("#access-prompt")).to_have_text(PROMPT)

    # An unknown username is refused with a message.
    owner.fill("#access-add-username", unique("nobody"))
    owner.locator("#access-add-form button[type=submit]").click()
    expect(card.locator("#access-status")).to_contain_text("no user called")

    # Removed, he is shown out again.
    member_row.locator(".access-remove").click()
    expect(member_row).to_have_count(0)
    shown_out(guest)

    # Invite links: copied into the box, listed, revoked, then dead.
    owner.locator("#access-invite").click()
    link = owner.locator("#access-invite-url")
    expect(link).to_have_value(re.compile(re.escape(f"{daphne_pair.a.url}/invites/") + r".+/$"))
    url = link.input_value()
    expect(card.locator(".access-invite")).to_have_count(1)
    card.locator(".access-revoke").click()
    expect(card.locator(".access-invite")).to_have_count(0)
    expect(card.locator("#access-status")).to_contain_text("revoked")
    dead = bob.context.new_page()
    answer = dead.goto(url)
    assert answer is not None and answer.status == 404
