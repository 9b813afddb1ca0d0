"""While the daemon starts, the admin listener answers who it is and its health at once; the
routes over the parts say it is starting until the parts exist."""

import httpx

from gateway.ops.admin import PART_ROUTES, AdminAppSlot, StartingAdminApi, create_admin_app
from gateway.ops.admin_identity import PID_HEADER, DaemonIdentity
from gateway.ops.metrics import Metrics


def client_of(app: AdminAppSlot) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")


def starting_app() -> AdminAppSlot:
    api = StartingAdminApi(
        Metrics(),
        lambda: {"status": "failing", "problems": ["store: not open"]},
        identity=DaemonIdentity(None, 4242),
    )
    return AdminAppSlot(create_admin_app(api))


async def test_a_starting_daemon_says_who_it_is_and_that_it_is_not_well_yet() -> None:
    client = client_of(starting_app())
    whoami = await client.get("/")
    assert whoami.status_code == 200 and whoami.json() == {"daemon": {"config": None, "pid": 4242}}
    health = await client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failing"
    assert (await client.get("/metrics")).status_code == 200


async def test_the_routes_over_the_parts_answer_503_with_the_daemons_name_until_they_exist() -> (
    None
):
    client = client_of(starting_app())
    for path, methods in PART_ROUTES.items():
        reply = await client.request(methods[0], path)
        assert reply.status_code == 503, path
        assert reply.json() == {"error": "the daemon is starting"}
        assert reply.headers[PID_HEADER] == "4242"


async def test_the_slot_serves_the_app_put_in_it_while_it_serves() -> None:
    slot = starting_app()
    client = client_of(slot)
    assert (await client.get("/modems")).status_code == 503
    slot.app = create_admin_app(StartingAdminApi(Metrics(), lambda: {"status": "ok"}))
    assert (await client.get("/health")).status_code == 200
