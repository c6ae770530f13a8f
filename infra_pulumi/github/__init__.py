"""GitHub governance for Slipway: a separate Pulumi project (`slipway-github`, run from this
directory) that configures the repositories, protects `main` and creates the deployment
environments with their variables and secrets."""
