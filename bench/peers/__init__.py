"""Peers relaybus is benchmarked against, each installed into a cache and driven from Python.

- :mod:`bench.peers.agent_relay`: ``agent-relay`` 1.6.0 (npm), a Node daemon on a Unix
  socket with SQLite, driven through its own client library.
"""
