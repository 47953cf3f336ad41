"""The HTTP layer (FastAPI): thin routes over the sequencer and the store's queries."""
