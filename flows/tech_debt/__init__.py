"""Tech-debt flow: hotspots (churn x complexity), dead code, markers and lint counts, with a
trend against the previous report."""
