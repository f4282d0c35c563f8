"""Tests of the model providers against a real local HTTP server."""
