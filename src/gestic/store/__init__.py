"""The run ledger's database and what lives in it: the ledger, the operation locks."""
