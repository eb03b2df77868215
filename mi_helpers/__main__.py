"""``python -m mi_helpers run [--model NAME] [--only 00,05]`` and
``python -m mi_helpers build-exercises [--out DIR]``."""

import sys

from .tools.runner import main

sys.exit(main())
