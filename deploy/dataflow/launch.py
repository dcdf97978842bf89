"""The Flex Template's FLEX_TEMPLATE_PYTHON_PY_FILE: hands Dataflow's arguments to curate.flex_template."""

import sys

from curate.flex_template import main

sys.exit(main())
