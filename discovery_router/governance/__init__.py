"""Which tools exist and may be called, the call guard, the audit log, masking secrets."""
