"""Agents: registration and epoch fencing, heartbeat, update, unregister, listing."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable

import pytest

from relaybus.errors import Conflict, InvalidInput, NotFound
from relaybus.models import Agent, AgentStatus, TaskStatus
from relaybus.service import Service, derive_agent_id
from relaybus.service.presence import HOSTNAME
from tests.conftest import HUNG, Background, Clock, Snapshot


def test_register_stores_every_field(service: Service, clock: Clock) -> None:
    agent = service.register(
        "alice",
        label="API writer",
        tags=["backend", "python", "backend"],
        capabilities=["review"],
        channels=["ops"],
        pid=None,
        host="box",
        cwd="/src/app",
        meta={"model": "opus"},
        instance_id="i-1",
    )
    assert agent.id == "alice"
    assert agent.workspace == "default"
    assert agent.label == "API writer"
    assert agent.tags == ["backend", "python"]  # duplicates dropped, order kept
    assert agent.capabilities == ["review"]
    assert agent.channels == ["ops"]
    assert agent.status is AgentStatus.ONLINE
    assert (agent.host, agent.cwd, agent.meta) == ("box", "/src/app", {"model": "opus"})
    assert (agent.instance_id, agent.epoch) == ("i-1", 1)
    assert agent.registered_at.timestamp() == clock.now
    assert service.get_agent("alice") == agent


def test_register_without_id_derives_host_tool_project_hash(service: Service) -> None:
    agent = service.register(None, tool="claude", host="dev.example.com", cwd="/home/u/shop")
    assert re.fullmatch(r"dev-claude-shop-[0-9a-f]{6}", agent.id)
    assert agent.id == derive_agent_id(
        host="dev.example.com", tool="claude", project="shop", cwd="/home/u/shop", instance_id=None
    )


def test_derived_ids_differ_per_instance_and_repeat_for_the_same_one() -> None:
    def derive(instance: str) -> str:
        return derive_agent_id(host="h", tool="codex", project="p", cwd="/p", instance_id=instance)

    assert derive("a") == derive("a")
    assert derive("a") != derive("b")


def test_reregistering_the_same_instance_keeps_the_epoch(service: Service) -> None:
    first = service.register("alice", instance_id="i-1")
    again = service.register("alice", instance_id="i-1", tags=["new"])
    assert again.epoch == first.epoch == 1
    assert again.tags == ["new"]


def test_a_new_instance_bumps_the_epoch(service: Service) -> None:
    service.register("alice", instance_id="i-1")
    assert service.register("alice", instance_id="i-2").epoch == 2
    assert service.register("alice").epoch == 3  # no instance id: always a new instance


def test_register_keeps_registered_at_and_moves_last_seen(service: Service, clock: Clock) -> None:
    first = service.register("alice", instance_id="i-1")
    clock.advance(30)
    again = service.register("alice", instance_id="i-2")
    assert again.registered_at == first.registered_at
    assert again.last_seen_at.timestamp() == clock.now


def test_register_appends_an_event(service: Service) -> None:
    service.register("alice", tags=["x"])
    (event,) = service.events(kinds=["agent.registered"])
    assert event.agent_id == "alice"
    assert event.data["epoch"] == 1
    assert event.data["tags"] == ["x"]


@pytest.mark.parametrize(
    "call",
    [
        lambda s, epoch: s.send("alice", "bob", "hi", epoch=epoch),
        lambda s, epoch: s.claim(1, "alice", epoch=epoch),
        lambda s, epoch: s.heartbeat("alice", epoch=epoch),
        lambda s, epoch: s.update_agent("alice", epoch=epoch, label="x"),
        lambda s, epoch: s.update_task(1, "alice", epoch=epoch, progress=5),
        lambda s, epoch: s.inbox("alice", epoch=epoch, mark_read=True),
        lambda s, epoch: s.mark_read("alice", epoch=epoch, up_to=100),
        lambda s, epoch: s.unregister("alice", epoch=epoch),
    ],
    ids=["send", "claim", "heartbeat", "update", "update_task", "read", "mark_read", "unregister"],
)
def test_calls_with_a_stale_epoch_are_refused_and_change_nothing(
    service: Service,
    clock: Clock,
    snapshot: Callable[[], Snapshot],
    call: Callable[[Service, int], object],
) -> None:
    old = service.register("alice", instance_id="i-1", capabilities=["review"])
    service.register("bob")
    service.send("bob", "alice", "unread mail")
    service.send("bob", "cap:review", "task", claimable=True)
    new = service.register("alice", instance_id="i-2", capabilities=["review"])
    assert new.epoch == old.epoch + 1
    clock.advance(5)  # a call that slipped through would move last_seen_at
    before = snapshot()
    with pytest.raises(Conflict, match="stale epoch") as caught:
        call(service, old.epoch)
    assert caught.value.details["current_epoch"] == new.epoch
    assert snapshot() == before


def test_calls_with_the_current_epoch_succeed(service: Service) -> None:
    service.register("alice", instance_id="i-1")
    current = service.register("alice", instance_id="i-2").epoch
    service.register("bob")
    assert service.send("alice", "bob", "hi", epoch=current).recipients == ["bob"]
    assert service.heartbeat("alice", epoch=current).epoch == current


def test_acting_as_an_unknown_agent_is_not_found(service: Service) -> None:
    service.register("bob")
    with pytest.raises(NotFound, match="ghost"):
        service.send("ghost", "bob", "boo")
    with pytest.raises(NotFound):
        service.heartbeat("ghost")


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "x" * 129, "tab\t", "ünï"])
def test_a_malformed_agent_id_is_invalid_input(
    service: Service, snapshot: Callable[[], Snapshot], bad: str
) -> None:
    before = snapshot()
    with pytest.raises(InvalidInput):
        service.register(bad)
    assert snapshot() == before


def test_broadcast_is_a_reserved_agent_id(service: Service) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        service.register("broadcast")


def test_malformed_tags_and_labels_are_invalid_input(service: Service) -> None:
    with pytest.raises(InvalidInput, match="tag"):
        service.register("alice", tags=["ok", "not ok"])
    with pytest.raises(InvalidInput, match="capability"):
        service.register("alice", capabilities=[":x"])
    with pytest.raises(InvalidInput, match="channel"):
        service.register("alice", channels=[""])
    with pytest.raises(InvalidInput, match="label"):
        service.register("alice", label="")
    assert service.list_agents() == []


def test_heartbeat_moves_last_seen(service: Service, clock: Clock) -> None:
    service.register("alice")
    clock.advance(60)
    agent = service.heartbeat("alice")
    assert agent.last_seen_at.timestamp() == clock.now
    assert agent.status is AgentStatus.ONLINE


def test_heartbeat_can_set_a_status(service: Service) -> None:
    service.register("alice")
    assert service.heartbeat("alice", status="busy").status is AgentStatus.BUSY


def test_update_changes_only_the_given_fields(service: Service) -> None:
    service.register("alice", label="old", tags=["a"], capabilities=["c"], channels=["ch"])
    agent = service.update_agent("alice", label="new", tags=["b", "c"], status="idle")
    assert agent.label == "new"
    assert agent.tags == ["b", "c"]
    assert agent.capabilities == ["c"]
    assert agent.channels == ["ch"]
    assert agent.status is AgentStatus.IDLE
    agent = service.update_agent("alice", capabilities=["review"], channels=[], meta={"k": 1})
    assert (agent.capabilities, agent.channels, agent.meta) == (["review"], [], {"k": 1})
    (event,) = service.events(kinds=["agent.updated"], since=0)[:1]
    assert event.data["label"] == "new"


def test_list_changes_add_and_remove_names_in_place_and_are_idempotent(
    service: Service,
) -> None:
    service.register("alice", tags=["a", "b"], capabilities=["chat"], channels=["ops"])

    once = service.update_agent(
        "alice", add_tags=["c", "a"], remove_tags=["b", "zz"], add_capabilities=["review"]
    )
    twice = service.update_agent(
        "alice", add_tags=["c", "a"], remove_tags=["b", "zz"], add_capabilities=["review"]
    )
    joined = service.update_agent("alice", join_channels=["ci"], leave_channels=["ops"])
    left = service.update_agent("alice", leave_channels=["ci"], remove_capabilities=["chat"])

    assert (once.tags, once.capabilities) == (["a", "c"], ["chat", "review"])
    assert (twice.tags, twice.capabilities) == (once.tags, once.capabilities)
    assert joined.channels == ["ci"]
    assert (left.channels, left.capabilities) == ([], ["review"])  # no channels: hears all
    assert left.epoch == 1  # changed in place: no new registration
    replaced = service.update_agent("alice", tags=["x", "y"], add_tags=["z"], remove_tags=["x"])
    assert replaced.tags == ["y", "z"]  # the changes apply to the list given
    updated = service.events(kinds=["agent.updated"])
    assert updated[0].data["tags"] == ["a", "c"]
    assert not service.events(kinds=["agent.registered"], since=updated[0].id)


def test_list_changes_with_a_bad_name_change_nothing(
    service: Service, snapshot: Callable[[], Snapshot]
) -> None:
    service.register("alice", tags=["a"])
    before = snapshot()

    with pytest.raises(InvalidInput, match="invalid tag 'bad name'"):
        service.update_agent("alice", add_tags=["ok", "bad name"])
    with pytest.raises(InvalidInput, match="invalid channel"):
        service.update_agent("alice", label="x", leave_channels=["-x"])
    with pytest.raises(InvalidInput, match="list of names"):
        service.update_agent("alice", add_capabilities="review")

    assert snapshot() == before


def test_concurrent_list_changes_of_different_names_all_land(
    service: Service, background: type[Background[Agent]]
) -> None:
    service.register("alice", instance_id="runner", tags=["base"])
    start = threading.Barrier(8)

    def add(name: str) -> Agent:
        start.wait(HUNG)
        return service.update_agent("alice", add_tags=[name], add_capabilities=[name])

    calls = [background(functools.partial(add, f"t{i}")) for i in range(8)]
    for call in calls:
        call.outcome()

    agent = service.get_agent("alice")
    assert sorted(agent.tags) == ["base"] + [f"t{i}" for i in range(8)]
    assert sorted(agent.capabilities) == [f"t{i}" for i in range(8)]
    assert agent.epoch == 1


def test_update_to_offline_appends_agent_offline(service: Service) -> None:
    service.register("alice")
    assert service.update_agent("alice", status="offline").status is AgentStatus.OFFLINE
    assert [e.agent_id for e in service.events(kinds=["agent.offline"])] == ["alice"]


def test_an_offline_agent_that_acts_is_online_again(service: Service) -> None:
    service.register("alice")
    service.update_agent("alice", status="offline")
    assert service.heartbeat("alice").status is AgentStatus.ONLINE
    assert [e.kind for e in service.events(kinds=["agent.online"])] == ["agent.online"]


def test_an_unknown_agent_status_is_invalid_input_and_changes_nothing(
    service: Service, snapshot: Callable[[], Snapshot]
) -> None:
    service.register("alice")
    before = snapshot()
    with pytest.raises(InvalidInput, match="sleeping"):
        service.update_agent("alice", status="sleeping")
    with pytest.raises(InvalidInput):
        service.heartbeat("alice", status="gone")
    with pytest.raises(InvalidInput, match="sleeping"):
        service.list_agents(status="sleeping")
    assert snapshot() == before


def test_unregister_removes_the_agent_its_deliveries_and_reopens_its_tasks(
    service: Service,
) -> None:
    service.register("alice", capabilities=["review"])
    service.register("bob", capabilities=["review"])
    service.register("carol")
    to_alice = service.send("carol", "alice", "for alice")
    both = service.send("carol", "cap:review", "review me", claimable=True)
    assert both.task_id is not None
    service.claim(both.task_id, "alice")
    earlier = service.send("carol", "alice", "read before")
    service.mark_read("alice", ids=[earlier.id])  # one read delivery, two unread

    service.unregister("alice")

    with pytest.raises(NotFound):
        service.get_agent("alice")
    with pytest.raises(NotFound):  # no inbox left to read, and no silent []
        service.inbox("alice", unread_only=False)
    task = service.get_task(both.task_id)
    assert (task.status, task.assignee) == (TaskStatus.OPEN, None)
    assert service.task_history(both.task_id)[-1].note == "unregistered"
    # Messages stay, and so does every other recipient's delivery.
    assert service.get_message(to_alice.id).recipients == []
    assert service.get_message(earlier.id).recipients == []
    assert [m.id for m in service.inbox("bob")] == [both.id]
    assert [e.agent_id for e in service.events(kinds=["agent.unregistered"])] == ["alice"]


def test_unregistering_an_unknown_agent_is_not_found(service: Service) -> None:
    with pytest.raises(NotFound):
        service.unregister("ghost")


def test_get_agent_suggests_close_ids(service: Service) -> None:
    service.register("alice")
    with pytest.raises(NotFound, match="did you mean 'alice'"):
        service.get_agent("alcie")


def test_list_agents_is_ordered_by_id_and_filters(service: Service) -> None:
    service.register("carol", tags=["web"], channels=["ops"])
    service.register("alice", tags=["api"], capabilities=["review"])
    service.register("bob", tags=["api", "web"], channels=["dev"])
    service.update_agent("bob", status="busy")
    assert [a.id for a in service.list_agents()] == ["alice", "bob", "carol"]
    assert [a.id for a in service.list_agents(tag="api")] == ["alice", "bob"]
    assert [a.id for a in service.list_agents(capability="review")] == ["alice"]
    # An agent with no channels hears every channel.
    assert [a.id for a in service.list_agents(channel="ops")] == ["alice", "carol"]
    assert [a.id for a in service.list_agents(status="busy")] == ["bob"]
    service.update_agent("carol", status="offline")
    assert [a.id for a in service.list_agents(online_only=True)] == ["alice", "bob"]
    assert [a.id for a in service.list_agents(status=AgentStatus.OFFLINE)] == ["carol"]


def test_agents_live_in_their_workspace(service: Service) -> None:
    service.register("alice", workspace="team-a")
    service.register("alice", workspace="team-b", tags=["b"])
    assert [a.tags for a in service.list_agents(workspace="team-b")] == [["b"]]
    assert service.list_agents() == []
    assert service.get_agent("alice", workspace="team-a").workspace == "team-a"


def test_register_defaults_host_to_this_machine(service: Service) -> None:
    assert service.register("alice").host == HOSTNAME
