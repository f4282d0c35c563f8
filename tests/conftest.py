"""Shared fixtures; service fixtures (pgserver, Redis) arrive with the Django integration."""
