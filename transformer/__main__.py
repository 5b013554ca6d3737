"""``python -m transformer``: the same command as the ``transformer`` console script."""

import sys

from transformer.cli import main

if __name__ == "__main__":
    sys.exit(main())
