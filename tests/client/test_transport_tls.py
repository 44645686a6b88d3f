"""The TLS settings of the SDK's HTTP clients (:func:`relaybus.client.transport.unused_tls`)."""

from __future__ import annotations

import ssl

import pytest

from relaybus.client.transport import unused_tls


def test_a_client_of_a_plain_http_relay_trusts_no_certificate_so_tls_never_succeeds() -> None:
    context = unused_tls("http://127.0.0.1:8765")

    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    assert unused_tls("http://relay.internal:80/base") is context  # built once, shared


@pytest.mark.parametrize("url", ["https://relay.example.com", "HTTPS://relay.example.com:8443"])
def test_a_client_of_an_https_relay_keeps_httpx_s_default_verification(url: str) -> None:
    assert unused_tls(url) is None
