"""`python -m receiver` is the same as the `receiver` console script."""

import sys

from receiver import cli

sys.exit(cli.main())
