from tests import factories


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_sign_in_page_renders(client):
    response = client.get("/sign-in")
    assert response.status_code == 200
    label = b'<label for="email">E-mail address <span class="req" aria-hidden="true">*</span></label>'
    assert label in response.data


def test_member_signs_in_and_sees_dashboard(client, member, sign_in):
    sign_in(member)
    page = client.get("/").get_data(as_text=True)
    assert "Harbour Outreach" in page
    assert factories.PASSWORD not in page


def test_me(client, member, auth):
    response = client.get("/api/v1/me", headers=auth(member))
    assert response.status_code == 200
    assert response.get_json()["organisation"]["name"] == "Harbour Outreach"


def test_dashboard_query_count_does_not_grow_with_members(client, admin, sign_in, count_queries):
    sign_in(admin)
    with count_queries() as few:
        assert client.get("/").status_code == 200
    for _ in range(10):
        factories.OrganisationFactory()
    with count_queries() as many:
        assert client.get("/").status_code == 200
    assert many.count == few.count
def test_fields_without_help_or_errors_have_no_empty_aria_attributes(client):
    page = client.get("/sign-in").get_data(as_text=True)
    assert '="None"' not in page
    assert 'autocomplete="username"' in page
