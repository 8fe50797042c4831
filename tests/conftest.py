"""Shared test set-up, applied before jax is imported anywhere in the session.

* 4 fake CPU devices, for the multi-device tests.
* Cheap XLA compilation: the tests run hundreds of tiny programs whose cost is almost all compile time;
  backend optimisation level 0 roughly halves it and changes no result beyond float rounding. With
  ``RNNLAB_XLA_DEFAULT_OPT=1`` (tests/test_engine_real_model.py sets it in a subprocess) XLA keeps its default
  level, so that a few engine tests also run the way real runs compile.
"""

import gc
import os

# Tracing JAX programs allocates many short-lived objects; Python's default cyclic-GC threshold (700) runs a
# collection every few hundred of them. A higher threshold in the test processes: test_scan + test_cells +
# test_layers_models + test_diagnostics in one process, 3 interleaved rounds, 161.9 / 155.8 / 148.0 s instead
# of 167.1 / 158.4 / 160.5 s (each round faster, 1.6-7.8%). The largest process's peak RSS in fresh-clone runs
# of make test: 3.6-3.8 GB with it, 3.9 GB without.
gc.set_threshold(50_000, 50, 50)

# Two malloc arenas in the test processes and their subprocesses (rnnlab.hostmem; its default is one): the
# suite is almost all XLA compiles, whose threads allocate at once, and one arena cost it ~4% more CPU time.
# tests/test_hostmem.py checks the default in a process of its own.
os.environ.setdefault("RNNLAB_MALLOC_ARENAS", "2")

_FLAGS = ("--xla_force_host_platform_device_count=4",)
if os.environ.get("RNNLAB_XLA_DEFAULT_OPT") != "1":
    _FLAGS += ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
for _flag in _FLAGS:  # an XLA_FLAGS already set is kept and extended
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache per test session, shared by the xdist workers and every subprocess they
# start (the CLI, multi-host and experiment tests compile the same small programs again and again). The
# controller imports this file first and sets the directory; the workers inherit it. Empty at the start of
# every session, so a run's time never depends on an earlier run.
if "RNNLAB_TEST_JAX_CACHE" not in os.environ and os.environ.get("RNNLAB_TEST_NO_JAX_CACHE") != "1":
    import atexit
    import shutil
    import tempfile

    os.environ["RNNLAB_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="rnnlab-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["RNNLAB_TEST_JAX_CACHE"], True)
if "RNNLAB_TEST_JAX_CACHE" in os.environ:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["RNNLAB_TEST_JAX_CACHE"])
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "default_opt: also run at XLA's default optimisation level (tests/test_engine_real_model.py)",
    )


# Modules ordered by their longest test, longest first (measured with `--durations=0`, quiet machine): a long
# test that starts last keeps one worker busy while the others have nothing left to do. Tests keep their order
# within a module (module-scoped fixtures are built once); modules not listed follow in collection order.
LONGEST_FIRST = (
    "test_multihost.py",
    "test_engine_real_model.py",
    "test_checkpoint.py",
    "test_watchdog.py",
    "test_app_experiments.py",
    "test_experiments.py",
    "test_experiment_jobs.py",
    "test_reliability.py",
    "test_lm_seq2seq_train.py",
    "test_native.py",
    "test_apps.py",
    "test_blocks.py",
    "test_scaling.py",
    "test_scan.py",
    "test_long_sequence_memory.py",
    "test_ctc.py",
    "test_captioning.py",
    "test_cli.py",
    # then every module with a test of >= 2.5 s, so that the last tests to run are short ones (in a fresh
    # clone the suite ended with one worker idle for ~20 s while the other ran what was left)
    "test_taggers.py",
    "test_diagnostics.py",
    "test_seed_sharding.py",
    "test_fused.py",
    "test_exploding.py",
    "test_depth.py",
    "test_crf.py",
    "test_sequence_parallel.py",
    "test_runs.py",
    "test_decoding.py",
    "test_seq2seq.py",
    "test_train.py",
    "test_bad_inputs.py",
    "test_layers_models.py",
    "test_integrity.py",
    "test_provenance.py",
    "test_optim.py",
    "test_cells.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
