"""Who an HTTP request acts for: its bearer token, verified from a token file or as an OAuth JWT."""
