"""Identity: API keys and their scopes, and the short-lived dashboard tokens."""
