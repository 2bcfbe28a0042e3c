"""``python -m shadowsync``: the ``shadowsync`` command line (see `shadowsync.cli`)."""

from shadowsync.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
