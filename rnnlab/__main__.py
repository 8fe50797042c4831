"""``python -m rnnlab ...`` is the ``rnnlab`` command (see ``rnnlab.cli``)."""

import sys

from rnnlab.cli import main

sys.exit(main())
