"""`python -m skinapp` is the `skinapp` command (the stack re-invokes itself this way)."""

from skinapp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
