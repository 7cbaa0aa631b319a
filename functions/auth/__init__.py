"""Users: the authentication port, its Cognito adapter, and login flood protection."""
