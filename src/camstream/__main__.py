"""``python -m camstream`` is the same as the ``camstream`` command."""

import sys

from .app.cli import main

sys.exit(main())
