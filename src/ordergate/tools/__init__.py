"""Offline tools around the gateway: the catalogue, the profile generator and the load producer."""
