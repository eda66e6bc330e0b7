"""Operations: I/O-free generators, one module per area, driven by the client shells."""
