"""The console (`aiaudit console serve`): a server-rendered web interface for the people who are
not engineers: the auditor who samples, the SOC analyst who triages, the data analyst who
queries, and the admin.

    roles.py     console roles and what each may see and do (pure)
    accounts.py  console accounts: names, roles, scrypt password hashes, in a 0600 file
    sessions.py  sign-in sessions, CSRF tokens and the sign-in throttle (pure, in memory)
    oidc.py      sign-in with an OIDC provider (authorization code with PKCE, state, nonce)
    reads.py     what each page shows, read through the store (the sink's store API on chDB)
    app.py       the Starlette app: pages, sign-in, security headers, an access record per view
"""
