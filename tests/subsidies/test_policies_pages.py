"""The policy page: the version in force in plain words, saving a new one, history, weights."""

from __future__ import annotations

from buyersclub.organisations.models import BudgetBand, PeopleReachedBand
from subsidies.services.policies import current_policy
from tests.factories import OrganisationFactory


def _form(page_values: dict | None = None) -> dict:
    """The form as the page pre-fills it from version 1."""
    values = {"based_on": "1", "base": "1", "no_public_funding": "2", "floor_amount": "0.00",
              "member_cap": "", "note": "Pipes up to 80%",
              "budget_under_50k": "4", "budget_50k_250k": "3", "budget_250k_1m": "2",
              "budget_over_1m": "1", "people_under_100": "0", "people_100_500": "1",
              "people_500_2000": "2", "people_over_2000": "3",
              "share_pipes": "0.8", "share_naloxone": "1", "share_oxygen": "1", "share_other": "0.5",
              "priority_1": "naloxone", "priority_2": "oxygen", "priority_3": "pipes",
              "priority_4": "other"}
    values.update({f"decile_{decile}": points for decile, points in
                   {"1": "3", "2": "3", "3": "2", "4": "2", "5": "1", "6": "1", "7": "", "8": "",
                    "9": "", "10": ""}.items()})
    values.update(page_values or {})
    return values


def test_the_page_shows_the_policy_in_words_and_low_resource_weights(sign_in, admin, session):
    OrganisationFactory(name="Harbour Union", low_resource=True, deprivation_decile=2,
                        budget_band=BudgetBand.UNDER_50K,
                        people_reached_band=PeopleReachedBand.FROM_100_TO_500)
    OrganisationFactory(name="Well Funded Clinic", low_resource=False)

    page = sign_in(admin).get("/fund/policy")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Version 1, in force" in text
    assert "an annual budget under 50,000" in text
    assert "75%" in text and "100%" in text  # shares per category
    assert "1. naloxone, 2. oxygen, 3. pipes, 4. other" in text
    assert "Harbour Union" in text
    assert ("need weight 11 = 1 (base) + 4 (annual budget under 50,000) + 1 (100 to 500 people "
            "reached a month) + 2 (no public funding) + 3 (deprivation decile 2)") in text
    assert "Well Funded Clinic" not in text
    assert "This is the first version" in text
    # Pre-filled with the current values.
    assert 'name="share_pipes" type="text" value="0.75"' in text
    assert 'name="based_on" type="hidden" value="1"' in text


def test_saving_a_new_version_from_the_page(sign_in, admin, session):
    browser = sign_in(admin)
    response = browser.post("/fund/policy", data=_form())
    assert response.status_code == 302
    assert current_policy().version == 2
    assert current_policy().max_share["pipes"] == "0.8"
    assert current_policy().weights["deprivation_decile"] == {"1": "3", "2": "3", "3": "2", "4": "2",
                                                              "5": "1", "6": "1"}
    text = browser.get("/fund/policy").get_data(as_text=True)
    assert "Policy version 2 is saved" in text
    assert "Version 2, in force" in text
    assert "80%" in text
    assert "/fund/policy/1" in text
    old = browser.get("/fund/policy/1").get_data(as_text=True)
    assert "replaced by version 2" in old
    assert "75%" in old


def test_errors_are_shown_next_to_their_field(sign_in, admin, session):
    browser = sign_in(admin)
    bad_share = browser.post("/fund/policy", data=_form({"share_pipes": "1.2"}))
    assert bad_share.status_code == 400
    assert 'id="share_pipes-error"' in bad_share.get_data(as_text=True)
    twice = browser.post("/fund/policy", data=_form({"priority_2": "naloxone"}))
    assert twice.status_code == 400
    assert "exactly once" in twice.get_data(as_text=True)
    assert current_policy().version == 1


def test_a_page_saved_from_an_older_version_is_refused(sign_in, admin, session):
    browser = sign_in(admin)
    assert browser.post("/fund/policy", data=_form()).status_code == 302
    stale = browser.post("/fund/policy", data=_form({"note": "my edits"}))
    assert stale.status_code == 409
    text = stale.get_data(as_text=True)
    assert "Version 2 was saved while you were editing version 1" in text
    assert "Version 2, in force" in text
    assert 'name="based_on" type="hidden" value="2"' in text  # kept edits, now on top of version 2
    assert current_policy().version == 2


def test_only_admins_see_the_policy_page(sign_in, finance):
    browser = sign_in(finance)
    assert browser.get("/fund/policy").status_code == 403
    assert browser.post("/fund/policy", data=_form()).status_code == 403


def test_the_page_does_not_query_per_member(sign_in, admin, session, count_queries):
    browser = sign_in(admin)
    for _ in range(2):
        OrganisationFactory(low_resource=True)
    with count_queries() as few:
        assert browser.get("/fund/policy").status_code == 200
    for _ in range(8):
        OrganisationFactory(low_resource=True)
    with count_queries() as many:
        assert browser.get("/fund/policy").status_code == 200
    assert many.count == few.count
