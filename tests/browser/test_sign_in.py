"""Signing in with a real browser: the form, its CSRF token and the session cookie."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_member_signs_in_and_sees_their_dashboard(page, live_server, live_member, browser_sign_in):
    browser_sign_in(page, live_member)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name=live_member.organisation)).to_be_visible()
    expect(page.get_by_role("heading", name=f"Welcome, {live_member.name}")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_wrong_password_keeps_the_member_out(page, live_member, browser_sign_in):
    browser_sign_in(page, replace(live_member, password="not the password"))

    expect(page).to_have_url(re.compile(r"/sign-in$"))
    expect(page.get_by_text("That e-mail address and password do not match an account.")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
