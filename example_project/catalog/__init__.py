"""The demo app: a vendor catalog imported by the durable ``catalog-import`` workflow."""
