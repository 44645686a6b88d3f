"""The client side: :class:`Relay` and :class:`AgentHandle`."""

from .relay import AgentHandle, Relay

__all__ = ["AgentHandle", "Relay"]
