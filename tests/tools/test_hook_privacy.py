"""A hook never hands the user's prompt to a socket another user could have put in
its place, and a hook other than SessionStart never creates a relay."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.tools.hookutil import hook_env, payload, run_hook

OTHER_UID = 4242


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_hook_ignores_a_session_socket_in_a_folder_of_another_user(
    tmp_path: Path, runtime: Path
) -> None:
    folder = runtime / "relaybus"
    folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as trap:
        trap.bind(str(folder / "s1.sock"))
        trap.listen()
        trap.setblocking(False)
        os.chown(folder, OTHER_UID, -1)

        result = run_hook(
            "user-prompt-submit", payload("user-prompt-submit"), hook_env(tmp_path, runtime, "s1")
        )

        assert result.code == 0, result
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected: the prompt never reached it


def test_a_prompt_hook_without_a_relay_creates_none(tmp_path: Path, runtime: Path) -> None:
    env = hook_env(tmp_path, runtime, "s2")

    result = run_hook("user-prompt-submit", payload("user-prompt-submit"), env)

    assert result.code == 0 and result.out == "", result
    assert not (tmp_path / "relay").exists()
