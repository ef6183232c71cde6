"""``python -m camstream`` is the same as the ``camstream`` command."""

import sys

from .cli import main

sys.exit(main())
