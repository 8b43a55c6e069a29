import sys

from colortrack.cli.main import main

sys.exit(main())
