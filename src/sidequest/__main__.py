"""``python -m sidequest`` is the ``sidequest`` command."""

import sys

from sidequest.cli import main

sys.exit(main())
