"""A deterministic, seeded simulation of the service layer (see :mod:`tests.sim.world`)."""
