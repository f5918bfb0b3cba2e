"""Who a caller is and what they may do: authentication, API tokens, permissions, credentials."""
