"""The single window: organisations, users, access requests, deadlines and the audit chain."""
