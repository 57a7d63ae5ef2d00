import sys

from monitor.entry import main

sys.exit(main())
