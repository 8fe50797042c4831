"""``python -m rnnlab.scaling SPEC.json RECORDS.jsonl``: a sweep worker (see :mod:`rnnlab.scaling.runner`)."""

import sys

from rnnlab.scaling.runner import worker

if __name__ == "__main__":
    worker(*sys.argv[1:3])
