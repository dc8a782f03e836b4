"""Host-agnostic plug-in core and the host adapters (command line, later GIMP and Krita)."""
