"""Group conversation (SPEC §7): when Claude answers, reply decisions, feedback and export."""
