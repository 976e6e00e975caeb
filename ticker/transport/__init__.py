"""Transports are thin adapters: they move bytes between a connection and a hub Client."""
