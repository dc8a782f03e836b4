"""The daemon: keeps the models warm and serves stylize jobs over ZeroMQ."""
