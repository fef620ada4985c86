"""Every call to another host: the calls' settings, URLs, and secrets kept out of messages.

`syncapp.http` (the calls themselves: budgets, retries, waits), `syncapp.egress` (where calls may go)
and `syncapp.authentication` (credentials) belong to this layer too; they kept their names.
"""
