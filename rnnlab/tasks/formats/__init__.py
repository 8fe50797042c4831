"""Parsers of the external file formats that datasets arrive in, one module per format (pure Python/NumPy)."""
