"""The cross-angle report: summary table and overview figures."""
