import sys

from colortrack.cli import main

sys.exit(main())
