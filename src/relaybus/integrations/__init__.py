"""External systems: the callbacks relaybus posts to integrations, and their signatures.

:mod:`.signing` signs and verifies a callback (``X-Relaybus-Signature``, Stripe's scheme),
for relaybus and for receivers written in Python; :mod:`.sender` posts the callback
outbox's due rows with httpx, from the server's sweeper.
"""
