"""Account lifecycle: email verification, password reset and change (docs/accounts.md).

The shared metadata (api.metadata) is imported first so that its naming convention applies to
the tables declared here.
"""

import api.metadata  # noqa: F401
