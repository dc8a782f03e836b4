"""PyTorch modules of the networks, with their foreign weights mapped in."""
