"""Sub-command registration, one module per area (each owns its parsers and handlers)."""
