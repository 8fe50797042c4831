"""Shared test set-up: 4 fake CPU devices (multi-device tests), set before jax is imported anywhere."""

import os

# Must run before the first `import jax` of the test session; an XLA_FLAGS already set is kept and extended.
_FLAG = '--xla_force_host_platform_device_count=4'
if _FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
