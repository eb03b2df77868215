"""``python -m mi_helpers run [--model NAME] [--only 00,05]``."""

import sys

from .tools.runner import main

sys.exit(main())
