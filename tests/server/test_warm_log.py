"""The warm relay's log file: rotated like the standard library's handler."""

from __future__ import annotations

import logging
from pathlib import Path

from relaybus.server.warm import RelayLog


def test_the_relay_log_rotates_before_a_record_would_pass_its_size(tmp_path: Path) -> None:
    path = tmp_path / "relay.log"
    handler = RelayLog(path, maxBytes=200, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("relaybus.test.warm_log")
    logger.addHandler(handler)
    try:
        for n in range(20):
            logger.info("line %02d %s", n, "x" * 30)
    finally:
        handler.close()
    current = path.read_text(encoding="utf-8").splitlines()
    previous = (tmp_path / "relay.log.1").read_text(encoding="utf-8").splitlines()
    assert current[-1].startswith("line 19 ")
    assert previous[-1] == f"line {int(current[0][5:7]) - 1:02d} " + "x" * 30
    assert not (tmp_path / "relay.log.3").exists()
    for name in ("relay.log", "relay.log.1", "relay.log.2"):
        assert (tmp_path / name).stat().st_size <= 200
