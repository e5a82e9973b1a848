"""Reports and model cards, written from analysis results."""
