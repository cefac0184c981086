"""The guest agent keeps each test's ublk-fixture stderr logs with its artifacts."""
from ublkcheck.guest import agent


def test_non_empty_server_logs_go_with_the_test_and_all_are_cleared(tmp_path):
    state, art = tmp_path / "state", tmp_path / "art"
    state.mkdir()
    art.mkdir()
    (state / "server-41.log").write_text("ublk-fixture: thread 0 q 0 tag 3: command failed\n")
    (state / "server-42.log").write_text("")
    (state / "dev-0.json").write_text("{}")  # device state: not a log, left alone
    agent.save_server_logs(str(art), str(state))
    assert (art / "server-41.log").read_text().startswith("ublk-fixture: thread 0")
    assert not (art / "server-42.log").exists()
    assert sorted(p.name for p in state.iterdir()) == ["dev-0.json"]


def test_no_state_dir_is_no_error(tmp_path):
    agent.save_server_logs(str(tmp_path), str(tmp_path / "missing"))
