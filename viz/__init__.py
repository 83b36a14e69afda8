"""The interactive explorer behind visualizer.py: the renderer (no GUI), its worker thread, the
command-file driver and the panels (widgets) of the window."""
