"""Shared test set-up, applied before jax is imported anywhere in the session.

* 4 fake CPU devices, for the multi-device tests.
* Cheap XLA compilation: the tests run hundreds of tiny programs whose cost is almost all compile time;
  backend optimisation level 0 roughly halves it and changes no result beyond float rounding. With
  ``RNNLAB_XLA_DEFAULT_OPT=1`` (tests/test_engine_real_model.py sets it in a subprocess) XLA keeps its default
  level, so that a few engine tests also run the way real runs compile.
"""

import os

_FLAGS = ("--xla_force_host_platform_device_count=4",)
if os.environ.get("RNNLAB_XLA_DEFAULT_OPT") != "1":
    _FLAGS += ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
for _flag in _FLAGS:  # an XLA_FLAGS already set is kept and extended
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "default_opt: also run at XLA's default optimisation level (tests/test_engine_real_model.py)",
    )
