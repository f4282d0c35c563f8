"""The support example: the ``support-triage`` supervisor routes a customer ticket through
triage, billing and a reply writer, on an offline model or an OpenAI-compatible one."""
