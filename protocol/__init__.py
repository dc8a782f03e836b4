"""Wire protocol: spec (SPEC.md), typed messages, ZeroMQ framing and the client every host uses."""
