from tests import factories


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_sign_in_page_renders(client):
    response = client.get("/sign-in")
    assert response.status_code == 200
    assert b'<label for="email">E-mail address</label>' in response.data


def test_member_signs_in_and_sees_dashboard(client, member, sign_in):
    sign_in(member)
    page = client.get("/").get_data(as_text=True)
    assert "Harbour Outreach" in page
    assert factories.PASSWORD not in page


def test_me(client, member, auth):
    response = client.get("/api/v1/me", headers=auth(member))
    assert response.status_code == 200
    assert response.get_json()["organisation"]["name"] == "Harbour Outreach"
