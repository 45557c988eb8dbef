"""Figures and reports. Matplotlib is used through `matplotlib.figure.Figure`
directly (no pyplot state, no GUI backend), so figures render headless."""
