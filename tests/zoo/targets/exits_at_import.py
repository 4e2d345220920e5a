"""A target module written as a script: importing it runs ``sys.exit(main())``."""

import sys


def main() -> int:
    print("training finished")
    return 0


sys.exit(main())
