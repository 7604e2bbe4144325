"""`python -m devtools`: see devtools/cli.py."""
import sys

from .cli import main

sys.exit(main())
