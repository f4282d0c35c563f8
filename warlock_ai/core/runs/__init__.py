"""The run kernel: what every durable kind shares (definition, run loop, writer, leases,
snapshots, effects, events, cancellation, signatures, drift). It never imports a kind."""
