"""Staff accounts: sign-in, roles, password reset, invitations and API tokens."""
