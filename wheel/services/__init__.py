"""Use cases: each takes its collaborators (sessions, adapters, senders) as parameters."""
