"""Style engines behind one interface (embedded Magenta, SANet)."""
