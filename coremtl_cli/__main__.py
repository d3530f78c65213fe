"""``python -m coremtl_cli``: the same as the ``coremtl`` command."""

import sys

from coremtl_cli.main import main

sys.exit(main())
