"""`python launcher.py` opens the desktop dashboard, the same as `skinapp gui`."""

from skinapp.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["gui"]))
