"""A runnable Django project that uses warlock_ai (the demo behind `make demo`)."""
