"""One ComponentResource per concern (network, security, database, cache, storage, cdn,
compute, observability, secrets, CI identity, flows worker, bastion, ...): each takes typed
arguments, creates its children with `parent=self` and registers its outputs."""
