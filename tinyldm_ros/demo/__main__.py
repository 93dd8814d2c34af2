"""`python -m tinyldm_ros.demo` (what `make demo` runs): the sweep of tinyldm_ros.demo.sweep."""

import sys

from tinyldm_ros.demo.sweep import main

sys.exit(main())
