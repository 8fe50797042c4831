"""TFDS builders of the datasets rnnlab prepares itself (these modules import tensorflow_datasets)."""
