"""``python -m densenet_tutorial``: see ``densenet_tutorial.cli``."""

from densenet_tutorial.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
