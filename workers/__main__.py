"""``python -m workers``: the same as the ``perfmesh`` command."""

import sys

from workers.cli import main

sys.exit(main())
