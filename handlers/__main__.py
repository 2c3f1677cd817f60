"""``python -m handlers``: the same as the ``siyu-bot`` command."""

import sys

from handlers import main

sys.exit(main())
