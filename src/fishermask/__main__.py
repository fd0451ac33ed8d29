"""``python -m fishermask``: the ``fishermask`` command, where its script is not on PATH."""

from fishermask.cli import main

if __name__ == "__main__":
    main()
