"""The transactional outbox: work that must follow a change, written in the change's transaction."""
