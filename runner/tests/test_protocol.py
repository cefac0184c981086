"""The guest-host protocol (guest/protocol.py): what the agent writes is what the host
reads, a half-written event line waits, and each console line belongs to one test."""
import json

from ublkcheck.guest import protocol
from ublkcheck.guest.protocol import Plan


def test_markers_the_agent_writes_are_the_ones_the_host_reads():
    assert protocol.marker(protocol.start_marker("io.Io.Verify/2")) == ("START", "io.Io.Verify/2")
    # As the console shows it: timestamp and the kmsg prefix before the marker.
    line = "[   12.345678] " + protocol.end_marker("io.Io.Verify/2", "pass")
    assert protocol.marker(line) == ("END", "io.Io.Verify/2")
    assert protocol.is_marker(protocol.start_marker("x"))
    assert not protocol.is_marker("[   1.0] ublk_drv: ublkcheck: START x")
    assert protocol.marker("BUG: kernel NULL pointer dereference") is None


def test_each_console_line_belongs_to_the_test_that_started_last():
    lines = ["boot line",
             protocol.start_marker("a.T.One"), "WARNING: at ublk_drv.c:10", protocol.end_marker("a.T.One", "fail"),
             "between tests",
             protocol.start_marker("a.T.Two"), "Oops: general protection fault"]
    assert protocol.owners(lines) == [None, "a.T.One", "a.T.One", None, None, "a.T.Two", "a.T.Two"]


def test_a_half_written_event_line_is_read_when_it_is_whole(tmp_path):
    path = tmp_path / protocol.EVENTS_FILE
    assert protocol.read_events(path) == (0, [])  # the agent has not written yet
    protocol.append_event(path, protocol.start_event("a.T.One"))
    whole = json.dumps(protocol.result_event("a.T.One", "pass", 1.5))
    with open(path, "a") as f:
        f.write(whole[:10])
    pos, evs = protocol.read_events(path)
    assert [e["event"] for e in evs] == [protocol.START]
    with open(path, "a") as f:
        f.write(whole[10:] + "\n")
    pos, evs = protocol.read_events(path, pos)
    assert evs == [{"event": "result", "name": "a.T.One", "status": "pass", "duration": 1.5, "message": "",
                    "skip_reason": "", "properties": {}}]
    assert protocol.read_events(path, pos) == (pos, [])


def test_the_plan_survives_the_share():
    plan = Plan(cwd="/repo", module="/m/ublk_drv.ko", fixture="/b/ublk-fixture", env={"A": "1"},
                coverage=True, tests=[{"name": "a.T.One", "binary": "/b/t", "filter": "T.One"}])
    assert Plan.loads(plan.dumps()) == plan
    assert Plan.loads(Plan(command="true").dumps()).command == "true"


def test_the_agent_uses_this_protocol():
    import importlib.util
    from pathlib import Path
    agent_py = Path(protocol.__file__).with_name("agent.py")
    spec = importlib.util.spec_from_file_location("agent_for_test", agent_py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert Path(mod.protocol.__file__).resolve() == Path(protocol.__file__).resolve()
    assert mod.SHARE == protocol.SHARE
