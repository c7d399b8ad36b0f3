"""``python -m rlam_jupyter.frontends.cli``: the ``rlam`` command, without its console script."""

import sys

from rlam_jupyter.frontends.cli import main

sys.exit(main())
