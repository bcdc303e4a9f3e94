"""``python -m realtime.cli``: the same as the ``rtv`` command."""

import sys

from realtime.cli.main import main

sys.exit(main())
