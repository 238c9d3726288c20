"""The data team's console: a page that reads the read API with a key the user pastes."""
