"""One-command set-up (venv, weights, host plug-ins, daemon start)."""
