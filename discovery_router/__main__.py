import sys

from discovery_router.cli.app import main

sys.exit(main())
