"""User administration for superusers (Caterva2's adduser / deluser / listusers) over Cognito."""

from __future__ import annotations

import uuid

import boto3
import caterva2 as cat2
import httpx
import pytest
from fastapi.testclient import TestClient

from functions.admin import admin_authenticator, generate_password
from functions.api.app import create_app
from functions.engine.errors import BadRequest, Forbidden
from functions.engine.spaces import Principal
from functions.engine.users import UserAdmin
from functions.services import Services
from tests.test_auth_http import add_user

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def superuser(stack):
    # made by cat-admin, as an operator makes the first superuser of a deployment
    from functions.admin import main as admin_main

    name, password = f"root-{RUN}", generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin_main([*argv, "users", "add", name, "--password", password, "--superuser"]) == 0
    auth = admin_authenticator(stack.resources["user_pool_id"], stack.endpoint_url)
    assert auth.is_superuser(name)
    return name, password


@pytest.fixture(scope="module")
def plain_user(stack):
    name = f"plain-{RUN}"
    return name, add_user(stack, name)


def test_a_superuser_adds_lists_and_deletes_through_caterva2s_client(api_url, superuser):
    client = cat2.Client(api_url, superuser)
    email, password = f"new-{RUN}@example.com", generate_password()
    message = client.adduser(email, password)
    assert message == f"User added: username='{email}' superuser=False"
    assert password not in message  # never echoed back
    listed = {u["email"]: u for u in client.listusers()}
    assert listed[email] == {
        "email": email, "id": listed[email]["id"], "is_active": True, "is_superuser": False, "is_verified": True,
    }
    assert listed[superuser[0]]["is_superuser"] is True
    assert [u["email"] for u in client.listusers(email)] == [email]
    # the new account logs in with its password
    assert httpx.post(f"{api_url}/auth/jwt/login", data={"username": email, "password": password}).status_code == 204
    assert client.deluser(email) == f"User deleted: {email}"
    with pytest.raises(httpx.HTTPStatusError) as info:
        client.deluser(email)
    assert info.value.response.status_code == 400 and "UserNotExists" in info.value.response.text
    assert email not in [u["email"] for u in client.listusers()]


def test_malformed_names_and_weak_passwords_are_bad_requests(api_url, superuser):
    client = cat2.Client(api_url, superuser)
    for name, password in (("no_at_sign", "Long-enough-1"), (f"w-{RUN}@example.com", "weak")):
        with pytest.raises(httpx.HTTPStatusError) as info:
            client.adduser(name, password)
        assert info.value.response.status_code == 400, info.value.response.text
        assert "Bad Request" in str(info.value)


def test_only_superusers_administer(api_url, plain_user):
    plain = cat2.Client(api_url, plain_user)
    with pytest.raises(httpx.HTTPStatusError) as info:
        plain.adduser(f"x-{RUN}@example.com", "Long-enough-1")
    assert info.value.response.status_code == 403
    for url in (f"{api_url}/api/listusers/", f"{api_url}/api/deluser/{plain_user[0]}"):
        assert httpx.get(url).status_code == 401  # anonymous
        assert httpx.get(url, cookies={"c2subauth": plain.cookie.split("=", 1)[1]}).status_code == 403
    # the refused delete deleted nothing: the user still logs in
    login = {"username": plain_user[0], "password": plain_user[1]}
    assert httpx.post(f"{api_url}/auth/jwt/login", data=login).status_code == 204


def test_unknown_fields_are_refused(api_url, superuser):
    client = cat2.Client(api_url, superuser)
    resp = httpx.post(
        f"{api_url}/api/adduser/", json={"username": f"f-{RUN}@example.com", "password": "x", "admin": True},
        cookies={"c2subauth": client.cookie.split("=", 1)[1]},
    )
    # refused as malformed (the app's validation answer), and nothing was created
    assert resp.status_code in (400, 422) and "admin" in resp.text
    assert f"f-{RUN}@example.com" not in [u["email"] for u in client.listusers()]


def test_without_a_user_pool_the_routes_are_not_there(stack):
    base = stack.regions[0].services
    services = Services(base.settings, base.region, base.publisher, base.events)
    with TestClient(create_app(services)) as client:
        assert client.get("/api/listusers/").status_code == 404
        assert client.post("/api/adduser/", json={"username": "a@b.c", "password": "p"}).status_code == 404


def test_the_pool_holds_at_most_max_users(aws):
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    pool = idp.create_user_pool(PoolName="bounded")["UserPool"]["Id"]
    from functions.adapters.cognito import CognitoAuthenticator

    auth = CognitoAuthenticator(idp, pool, "")
    auth.add_user("boss", "Boss-password-1", superuser=True)
    admin = UserAdmin(auth, max_users=3)
    boss = Principal(sub="boss-sub", username="boss")
    admin.add(boss, "a@example.com", "Long-enough-1")
    admin.add(boss, "b@example.com", "Long-enough-1")
    with pytest.raises(BadRequest, match="maximum of 3 users"):
        admin.add(boss, "c@example.com", "Long-enough-1")
    with pytest.raises(Forbidden):
        admin.add(Principal(sub="a-sub", username="a@example.com"), "d@example.com", "Long-enough-1")
    assert [a.username for a in auth.accounts()] == ["a@example.com", "b@example.com", "boss"]
