"""Authentication: users, ES256 access tokens, refresh-token sessions, roles.

The shared metadata (api.metadata) is imported before any auth module so that its naming
convention is in force when the auth tables are declared, whichever module is imported first.
"""

import api.metadata  # noqa: F401
