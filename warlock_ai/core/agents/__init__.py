"""Agents: a model, a system prompt, tools and middleware, called in trips until done."""
