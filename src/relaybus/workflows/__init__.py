"""Workflows: end-to-end jobs built on the SDK.

:func:`relaybus.workflows.demo.run_demo` is the main one (``relaybus demo``):
real agent processes race for a review task through the embedded relay.
"""
