"""``python -m mixweave.cli``: the ``mixweave`` command."""

import sys

from . import main

sys.exit(main())
