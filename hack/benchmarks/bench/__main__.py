"""``python -m bench`` (with hack/benchmarks and tests on PYTHONPATH): see bench.runner."""

import sys

from bench.runner import main

sys.exit(main())
