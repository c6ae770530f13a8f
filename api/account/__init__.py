"""Account lifecycle: email verification, password reset and change (docs/accounts.md).

The shared metadata (api.models) is imported first so that its naming convention applies to
the tables declared here.
"""

import api.models  # noqa: F401
