"""Beyond one process: ranks under torchrun, batch jobs shared between them, sharded training data."""
