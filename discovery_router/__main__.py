import sys

from discovery_router.cli import main

sys.exit(main())
