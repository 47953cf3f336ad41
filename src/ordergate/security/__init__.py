"""Access control: API keys, their roles and rights, and the key file that holds them (hashed)."""
