"""Analysis of models and runs: vanishing-gradient diagnostics and reports (see ARCHITECTURE.md)."""
