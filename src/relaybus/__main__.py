"""``python -m relaybus``: the same as the ``relaybus`` command."""

from relaybus.entry import main

if __name__ == "__main__":
    main()
