import sys

from milan_lab.cli import main

sys.exit(main())
