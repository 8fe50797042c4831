"""Where prepared data comes from, one module per origin: pinned package archives, the TFDS catalog."""
