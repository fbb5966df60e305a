"""`python -m vedcli`: the same as the `ved` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
