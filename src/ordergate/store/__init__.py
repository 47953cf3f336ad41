"""Durable storage behind one narrow interface (:mod:`ordergate.store.base`), one module per engine."""
